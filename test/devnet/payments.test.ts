import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import type { DevnetNodeInfo } from '../../src/cli/devnet.ts'
import { verifyReceipt } from '../../src/inference/index.ts'
import { runCli, startDevnet } from '../cli-runner.ts'
import { freePortBase, tempDir, waitFor } from '../helpers.ts'

interface Economics {
  totalSupply: string
  treasury: { address: string; balance: string }
  feesRedeemed: string
  paidToHosts: string
  paidToValidators: string
  paidToTreasury: string
}

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`)
  return (await res.json()) as T
}

const balanceOf = async (api: string, address: string) =>
  BigInt((await get<{ balance: string }>(`${api}/mesh/accounts/${address}`)).balance)
const escrowOf = async (api: string, address: string) =>
  BigInt((await get<{ escrow: { balance: string } | null }>(`${api}/mesh/accounts/${address}`)).escrow?.balance ?? '0')

test('paid inference: the edge pays hosts through vouchers; redemption splits 70/20/10 and conserves supply', {
  timeout: 300_000
}, async (t) => {
  const base = await freePortBase(3)
  const dir = join(await tempDir(t), 'devnet')
  const { nodes } = await startDevnet(t, dir, ['--nodes', '3', '--base-port', String(base), '--block-time', '1000'])
  const [edge, ...hosts] = nodes as [DevnetNodeInfo, ...DevnetNodeInfo[]]
  const api = edge.apiUrl
  const before = await get<Economics>(`${api}/mesh/economics`)
  const balances = new Map<string, bigint>()
  for (const n of nodes) balances.set(n.peerId, await balanceOf(api, n.peerId))
  const escrowBefore = await escrowOf(api, edge.peerId)
  const { models } = await get<{ models: Array<{ cid: string }> }>(`${api}/mesh/fees`)
  const cid = models[0]?.cid ?? ''

  // requests through the edge: each answer names its host and its cost, in the receipt too
  const costs = new Map<string, bigint>()
  for (let i = 0; i < 6; i++) {
    const res = await fetch(`${api}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: cid, prompt: `request number ${i}`, max_tokens: 12 })
    })
    assert.equal(res.status, 200, await res.clone().text())
    const body = (await res.json()) as { llmesh: { cost: string; receipt: string } }
    const host = res.headers.get('x-llmesh-host') ?? ''
    const cost = BigInt(res.headers.get('x-llmesh-cost') ?? '-1')
    assert.ok(cost > 0n, 'a priced model costs something')
    assert.equal(body.llmesh.cost, cost.toString())
    const receipt = verifyReceipt(Buffer.from(body.llmesh.receipt, 'base64'))
    assert.equal(receipt.cost, cost)
    assert.equal(receipt.payer, edge.peerId)
    costs.set(host, (costs.get(host) ?? 0n) + cost)
  }
  const total = [...costs.values()].reduce((a, b) => a + b, 0n)

  // the hosts redeem their latest vouchers; the chain pays exactly what the client was told
  const after = await waitFor(
    'every cost redeemed',
    async () => {
      const e = await get<Economics>(`${api}/mesh/economics`)
      return BigInt(e.feesRedeemed) - BigInt(before.feesRedeemed) === total ? e : undefined
    },
    90_000,
    500
  )
  assert.equal(await escrowOf(api, edge.peerId), escrowBefore - total, 'the escrow paid exactly the costs')
  assert.equal(after.totalSupply, before.totalSupply, 'supply unchanged')
  const paid = {
    hosts: BigInt(after.paidToHosts) - BigInt(before.paidToHosts),
    validators: BigInt(after.paidToValidators) - BigInt(before.paidToValidators),
    treasury: BigInt(after.paidToTreasury) - BigInt(before.paidToTreasury)
  }
  assert.equal(paid.hosts + paid.validators + paid.treasury, total, 'the split adds up to the redeemed amount')
  // each redeem transaction rounds down its 70% and 20% parts (the remainder goes to the treasury)
  const redeems = 2 * hosts.length * 4
  assert.ok(paid.hosts <= (total * 7n) / 10n && paid.hosts > (total * 7n) / 10n - BigInt(redeems), `hosts got ${paid.hosts} of ${total}`)
  assert.ok(paid.validators <= (total * 2n) / 10n && paid.validators > (total * 2n) / 10n - BigInt(2 * redeems))
  assert.ok(paid.treasury >= total / 10n)
  // the balances moved by exactly those parts: hosts by their 70%, every validator by its share of 20%
  let gained = 0n
  for (const n of nodes) gained += (await balanceOf(api, n.peerId)) - (balances.get(n.peerId) ?? 0n)
  assert.equal(gained, paid.hosts + paid.validators, 'nodes gained the host and validator parts')
  assert.equal(BigInt(after.treasury.balance) - BigInt(before.treasury.balance), paid.treasury)
  for (const [host, cost] of costs) {
    const gain = (await balanceOf(api, host)) - (balances.get(host) ?? 0n)
    // a host is also one of three equal validators
    assert.ok(gain >= (cost * 7n) / 10n - BigInt(redeems), `host ${host} gained ${gain} for ${cost} of work`)
  }

  // the edge closes its escrow: no free service, an OpenAI-style 402
  const closed = await runCli(t, ['tx', 'escrow', 'close', '--home', edge.home], 60_000)
  assert.equal(closed.code, 0, closed.stderr)
  const refused = await fetch(`${api}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: cid, prompt: 'for free?', max_tokens: 4 })
  })
  assert.equal(refused.status, 402)
  const error = ((await refused.json()) as { error: { code: string; type: string } }).error
  assert.equal(error.code, 'insufficient_quota')
  assert.equal(error.type, 'insufficient_quota')
})

test('governance on the devnet: a base fee change passes and the next requests cost the new price', { timeout: 300_000 }, async (t) => {
  const base = await freePortBase(3)
  const dir = join(await tempDir(t), 'devnet')
  const { nodes } = await startDevnet(t, dir, ['--nodes', '3', '--base-port', String(base), '--block-time', '2000'])
  const [edge] = nodes as [DevnetNodeInfo, ...DevnetNodeInfo[]]
  const api = edge.apiUrl
  const status = await get<{ height: number; params: { baseFee: string; govVotingBlocks: number } }>(`${api}/mesh/chain/status`)
  const newFee = BigInt(status.params.baseFee) * 3n
  const at = status.height + status.params.govVotingBlocks + 5
  const proposed = await runCli(t, ['gov', 'propose', '--set', `baseFee=${newFee}`, '--at', String(at), '--home', edge.home], 60_000)
  assert.equal(proposed.code, 0, proposed.stderr)
  const { proposals } = await get<{ proposals: Array<{ id: number; status: string }> }>(`${api}/mesh/gov/proposals`)
  const id = proposals.at(-1)?.id
  assert.ok(id != null)
  // every validator votes yes (each node is one, with equal stake)
  const votes = await Promise.all(nodes.map((n) => runCli(t, ['gov', 'vote', String(id), 'yes', '--home', n.home], 60_000)))
  for (const voted of votes) assert.equal(voted.code, 0, voted.stderr)
  let seen = ''
  await waitFor(
    `the new base fee at height ${at}`,
    async () => {
      const s = await get<{ height: number; params: { baseFee: string } }>(`${api}/mesh/chain/status`)
      const p = await get<{ status: string; tally: unknown }>(`${api}/mesh/gov/proposals/${id}`)
      seen = `height ${s.height}, base fee ${s.params.baseFee}, proposal ${JSON.stringify(p)}`
      if (p.status === 'rejected' || p.status === 'failed') throw new Error(`the proposal ended ${p.status}: ${seen}`)
      return s.height >= at && BigInt(s.params.baseFee) === newFee ? s : undefined
    },
    120_000,
    500
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last seen: ${seen}`)
  })
  // a request now costs the new base fee x the model's multiplier x its tokens
  const fees = async () => get<{ baseFee: string; models: Array<{ cid: string; multiplier: string }> }>(`${api}/mesh/fees`)
  const before = await fees()
  const res = await fetch(`${api}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: before.models[0]?.cid, prompt: 'priced by governance', max_tokens: 8 })
  })
  assert.equal(res.status, 200)
  const after = await fees()
  const body = (await res.json()) as { usage: { total_tokens: number } }
  const cost = BigInt(res.headers.get('x-llmesh-cost') ?? '0')
  const price = (multiplier: string) => (newFee * BigInt(multiplier) * BigInt(body.usage.total_tokens) + 999_999n) / 1_000_000n
  assert.equal(before.baseFee, newFee.toString())
  // the multiplier only falls while nothing else is served, maybe by a few blocks between the two
  // readings: the cost is the new base fee at a multiplier between them (the old fee would be 3x less)
  const [high, low] = [price(before.models[0]?.multiplier ?? '0'), price(after.models[0]?.multiplier ?? '0')]
  assert.ok(cost <= high && cost >= low, `cost ${cost}, expected between ${low} and ${high}`)
  assert.ok(cost * 2n > high, 'the old base fee would cost a third of this')
})
