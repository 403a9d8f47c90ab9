import type { GovChoice, TxBody } from '../chain/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { STAKE_ROLES, type StakeRole } from '../params/index.ts'
import { callApi } from './api-client.ts'

export class TxCommandError extends LlmeshError<'TX_FAILED' | 'TX_TIMEOUT' | 'BAD_ARGUMENT'> {}

const print = (out: NodeJS.WritableStream, value: unknown): void => void out.write(`${JSON.stringify(value, null, 2)}\n`)

/** `llmesh chain status`: the chain as the node sees it. */
export async function runChainStatus(api: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  print(out, await callApi(api, '/mesh/chain/status'))
}

/** `llmesh chain block [HEIGHT]`: one block (the latest by default). */
export async function runChainBlock(api: string, height: string | undefined, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  print(out, await callApi(api, `/mesh/chain/blocks/${encodeURIComponent(height ?? 'latest')}`))
}

/** `llmesh account [ADDRESS]`: balance, nonce and stakes. */
export async function runAccount(api: string, address: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  print(out, await callApi(api, `/mesh/accounts/${encodeURIComponent(address)}`))
}

interface FeesView {
  height: number
  baseFee: string
  models: Array<{ cid: string; name: string; complexity: string; multiplier: string; pricePer1kTokens: string }>
}

/** `llmesh fees`: the price of every registered model now. */
export async function runFees(api: string, json: boolean, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const fees = (await callApi(api, '/mesh/fees')) as FeesView
  if (json) return print(out, fees)
  out.write(`height ${fees.height}, base fee ${fees.baseFee} per token (complexity 1, multiplier 1x)\n`)
  if (fees.models.length === 0) out.write('no registered models\n')
  for (const m of fees.models) {
    const multiplier = (Number(m.multiplier) / 1_000_000).toFixed(4)
    out.write(`${m.cid}  ${m.name}  complexity ${m.complexity}  multiplier ${multiplier}x  ${m.pricePer1kTokens} per 1k tokens\n`)
  }
}

interface GovView {
  height: number
  votingBlocks: number
  quorumBps: number
  thresholdBps: number
  proposals: Array<{
    id: number
    proposer: string
    changes: Record<string, string>
    votingEndHeight: number
    applyHeight: number
    status: string
    tally: { yes: string; no: string; abstain: string; total: string; final: boolean; passing: boolean }
    failure: string | null
  }>
}

const percent = (bps: number): string => `${(bps / 100).toFixed(2)}%`

/** `llmesh gov ls`: open proposals and recently finished ones, newest first. */
export async function runGovList(api: string, json: boolean, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const gov = (await callApi(api, '/mesh/gov/proposals')) as GovView
  if (json) return print(out, gov)
  out.write(
    `height ${gov.height}; voting lasts ${gov.votingBlocks} blocks, quorum ${percent(gov.quorumBps)} of the power, yes over ${percent(gov.thresholdBps)} of yes + no\n`
  )
  if (gov.proposals.length === 0) out.write('no proposals\n')
  for (const p of gov.proposals) {
    const changes = Object.entries(p.changes)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
    const t = p.tally
    const when =
      p.status === 'voting'
        ? `voting until ${p.votingEndHeight}, would apply at ${p.applyHeight}`
        : `${p.status}, applies at ${p.applyHeight}`
    const tally = `yes ${t.yes} no ${t.no} abstain ${t.abstain} of ${t.total}${t.final ? '' : t.passing ? ' (passing so far)' : ' (not passing so far)'}`
    out.write(`#${p.id}  ${changes}  ${when}  ${tally}  by ${p.proposer}${p.failure == null ? '' : `  failed: ${p.failure}`}\n`)
  }
}

/** `--set name=value` flags as a proposal's changes. */
export function parseGovChanges(sets: readonly string[]): Array<[string, string]> {
  if (sets.length === 0) {
    throw new TxCommandError('BAD_ARGUMENT', 'a proposal needs at least one change', {
      hint: 'give --set NAME=VALUE, e.g. --set baseFee=20'
    })
  }
  return sets.map((set) => {
    const m = /^([A-Za-z][A-Za-z0-9]*)=(0|[1-9][0-9]{0,19})$/.exec(set)
    if (m == null) {
      throw new TxCommandError('BAD_ARGUMENT', `--set ${set} is not NAME=VALUE`, {
        hint: 'the value is a whole number (amounts in the smallest unit), e.g. --set baseFee=20; `llmesh gov ls --json` lists the governable names'
      })
    }
    return [m[1] as string, m[2] as string]
  })
}

// the chain's GOV_CHOICES, written out: loading the chain module here would slow every command of this file
const GOV_CHOICES: readonly GovChoice[] = ['yes', 'no', 'abstain']

/** `gov vote ID CHOICE` arguments. */
export function parseGovVote(id: string, choice: string): { proposal: number; choice: GovChoice } {
  if (!/^(0|[1-9][0-9]{0,14})$/.test(id)) {
    throw new TxCommandError('BAD_ARGUMENT', `${id} is not a proposal id`, { hint: '`llmesh gov ls` lists the proposals' })
  }
  if (!(GOV_CHOICES as readonly string[]).includes(choice)) {
    throw new TxCommandError('BAD_ARGUMENT', `${choice} is not a vote`, { hint: `vote ${GOV_CHOICES.join(', ')}` })
  }
  return { proposal: Number(id), choice: choice as GovChoice }
}

export function parseAmount(flag: string, value: string): bigint {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(value)) {
    throw new TxCommandError('BAD_ARGUMENT', `${flag} ${value} is not an amount`, {
      hint: 'give a whole number of the smallest unit, e.g. 1000'
    })
  }
  return BigInt(value)
}

export function parseStakeRole(value: string): StakeRole {
  if (!(STAKE_ROLES as readonly string[]).includes(value)) {
    throw new TxCommandError('BAD_ARGUMENT', `--role ${value} cannot stake`, { hint: `use ${STAKE_ROLES.join(' or ')}` })
  }
  return value as StakeRole
}

/**
 * `llmesh tx ...`: signs a transaction with the key of `home`, submits it to the node at `api`,
 * and (with `wait`) waits until it is committed or refused.
 */
export async function runTx(
  o: { api: string; home: string; body: TxBody; fee: bigint; wait: boolean },
  out: NodeJS.WritableStream = process.stdout
): Promise<void> {
  const { loadIdentityKey, signerFromPrivateKey } = await import('../crypto/index.ts')
  const { encodeTx, signTx } = await import('../chain/index.ts')
  const { homePaths } = await import('../node/index.ts')
  const signer = signerFromPrivateKey(await loadIdentityKey(homePaths(o.home).key))
  const chain = await callApi<{ chainId: string }>(o.api, '/mesh/chain/status')
  const account = await callApi<{ nextNonce: number }>(o.api, `/mesh/accounts/${signer.address}`)
  const tx = signTx({ chainId: chain.chainId, from: signer.address, nonce: account.nextNonce, fee: o.fee, body: o.body }, signer)
  const submitted = await callApi<{ hash: string }>(o.api, '/mesh/tx', {
    method: 'POST',
    body: { tx: Buffer.from(encodeTx(tx)).toString('base64') }
  })
  if (!o.wait) {
    print(out, { hash: submitted.hash, status: 'pending' })
    return
  }
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const s = await callApi<{ status: string; code?: string; reason?: string }>(o.api, `/mesh/tx/${submitted.hash}`)
    if (s.status === 'committed') {
      print(out, { hash: submitted.hash, ...s })
      return
    }
    if (s.status === 'rejected') throw new TxCommandError('TX_FAILED', `transaction ${submitted.hash} was refused: ${s.reason}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new TxCommandError('TX_TIMEOUT', `transaction ${submitted.hash} was not committed within 60 s`, {
    hint: `check later with: curl ${o.api}/mesh/tx/${submitted.hash}`
  })
}
