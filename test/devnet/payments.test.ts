import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { DevnetNodeInfo } from '../../src/cli/devnet.ts'
import { verifyReceipt } from '../../src/inference/index.ts'
import { runCli, spawnCli, startDevnet } from '../cli-runner.ts'
import { alive, freePortBase, tempDir, waitFor } from '../helpers.ts'

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
  const complete = async (prompt: string, costs: Map<string, bigint>) => {
    const res = await fetch(`${api}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: cid, prompt, max_tokens: 12 })
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
  const costs = new Map<string, bigint>()
  for (let i = 0; i < 6; i++) await complete(`request number ${i}`, costs)
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
  // hosts: exactly 70% of what each earned, rounded down once (each host's rounding carries over
  // between its redemptions); validators: 20% pro rata to their equal stakes, each redeem rounding
  // down; the treasury: the rest
  let toHosts = 0n
  for (const cost of costs.values()) toHosts += (cost * 7n) / 10n
  assert.equal(paid.hosts, toHosts, `hosts got ${paid.hosts} for ${total} of work`)
  const redeems = 2 * hosts.length * 4
  assert.ok(paid.validators <= (total * 2n) / 10n && paid.validators > (total * 2n) / 10n - BigInt(nodes.length * redeems))
  assert.equal(paid.treasury, total - paid.hosts - paid.validators)
  // the balances moved by exactly those parts: the edge is only a validator, each host is also one
  const gain = async (n: DevnetNodeInfo) => (await balanceOf(api, n.peerId)) - (balances.get(n.peerId) ?? 0n)
  const validatorPart = await gain(edge)
  assert.equal(validatorPart * BigInt(nodes.length), paid.validators, 'equal stakes, equal validator parts')
  for (const host of hosts) {
    const cost = costs.get(host.peerId) ?? 0n
    assert.equal(await gain(host), (cost * 7n) / 10n + validatorPart, `host ${host.peerId} for ${cost} of work`)
  }
  assert.equal(BigInt(after.treasury.balance) - BigInt(before.treasury.balance), paid.treasury)

  // restarts. The edge, killed -9, forgets what it owes; the hosts still count it: the edge takes
  // their word (within a bound) when it opens new sessions. A host stopped with SIGTERM redeems and
  // keeps its books. Every request after them is paid, to the unit.
  const redeemedBefore = BigInt(after.feesRedeemed)
  const escrowMid = await escrowOf(api, edge.peerId)
  const later = new Map<string, bigint>()
  const servingHosts = async () =>
    (await get<{ hosts: Array<{ peerId: string }> }>(`${api}/mesh/hosts`).catch(() => ({ hosts: [] }))).hosts.length
  process.kill(edge.pid, 'SIGKILL')
  spawnCli(t, ['start', '--home', edge.home])
  await waitFor(
    'the restarted edge to hear the hosts',
    async () => ((await servingHosts()) === hosts.length ? true : undefined),
    60_000,
    250
  )
  for (let i = 0; i < 3; i++) await complete(`after the edge restarted ${i}`, later)
  // host 1 stops right after its answers: the voucher for a job comes in a `pay` frame after the
  // answer, and a stopping host waits for it (host.stopDrainMs; before it did, CI once saw one
  // job's cost left unredeemed)
  const host1 = hosts[0] as DevnetNodeInfo
  process.kill(host1.pid, 'SIGTERM')
  await waitFor('host 1 to stop', async () => (alive(host1.pid) ? undefined : true), 30_000, 100)
  spawnCli(t, ['start', '--home', host1.home])
  for (let i = 0; i < 3; i++) await complete(`after a host restarted ${i}`, later)
  const laterTotal = [...later.values()].reduce((a, b) => a + b, 0n)
  let redeemedLater = 0n
  const settled = await waitFor(
    'every cost after the restarts redeemed',
    async () => {
      const e = await get<Economics>(`${api}/mesh/economics`)
      redeemedLater = BigInt(e.feesRedeemed) - redeemedBefore
      return redeemedLater >= laterTotal ? e : undefined
    },
    90_000,
    500
  ).catch(async (err: Error) => {
    // say what was redeemed, by whom, and what each node logged last
    const tails = await Promise.all(
      nodes.map(async (n) => {
        const log = await readFile(join(n.home, 'node.log'), 'utf8').catch((e: Error) => e.message)
        return `${n.peerId.slice(-8)} log tail:\n${log.split('\n').slice(-12).join('\n')}`
      })
    )
    const owed = [...later].map(([host, cost]) => `${host.slice(-8)}: ${cost}`).join(', ')
    throw new Error(`${err.message}: ${redeemedLater} of ${laterTotal} redeemed (costs by host ${owed})\n${tails.join('\n')}`)
  })
  assert.equal(BigInt(settled.feesRedeemed) - redeemedBefore, laterTotal, 'paid exactly what the client was told, no more')
  assert.equal(await escrowOf(api, edge.peerId), escrowMid - laterTotal)
  assert.equal(settled.totalSupply, before.totalSupply, 'supply unchanged')

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
