import type { TxBody } from '../chain/index.ts'
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
