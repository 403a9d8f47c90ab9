import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { encodeTx, signTx } from '../../src/chain/index.ts'
import type { DevnetNodeInfo } from '../../src/cli/devnet.ts'
import { loadIdentityKey, signerFromPrivateKey } from '../../src/crypto/index.ts'
import { spawnCli, startDevnet } from '../cli-runner.ts'
import { freePortBase, tempDir, waitFor } from '../helpers.ts'

interface ChainStatus {
  chainId: string
  height: number
  lastBlockHash: string
}

async function get<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
  const body = await res.json()
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${JSON.stringify(body)}`)
  return body as T
}

const chainStatus = (n: DevnetNodeInfo): Promise<ChainStatus> => get<ChainStatus>(`${n.apiUrl}/mesh/chain/status`)
const blockHashAt = async (n: DevnetNodeInfo, h: number): Promise<string> =>
  (await get<{ hash: string }>(`${n.apiUrl}/mesh/chain/blocks/${h}`)).hash
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test('the devnet chain: blocks at the interval with one hash everywhere, survives kill -9, stalls without a quorum and resumes', {
  timeout: 300_000
}, async (t) => {
  const base = await freePortBase(4)
  const dir = join(await tempDir(t), 'devnet')
  const { devnet, nodes } = await startDevnet(t, dir, ['--nodes', '4', '--base-port', String(base), '--block-time', '1000'])
  const [n0, n1, n2, n3] = nodes as [DevnetNodeInfo, DevnetNodeInfo, DevnetNodeInfo, DevnetNodeInfo]
  const restarted: Array<ReturnType<typeof spawnCli>> = []

  // 1. blocks commit at about the interval, with identical hashes on every node
  await waitFor(
    'height 8 on every node',
    async () => ((await Promise.all(nodes.map(chainStatus))).every((s) => s.height >= 8) ? true : undefined),
    60_000,
    500
  )
  for (let h = 1; h <= 8; h++) {
    const hashes = await Promise.all(nodes.map((n) => blockHashAt(n, h)))
    assert.equal(new Set(hashes).size, 1, `height ${h}: ${hashes.join(' ')}`)
  }
  const times = await Promise.all(
    [3, 4, 5, 6, 7, 8].map(async (h) => (await get<{ header: { time: number } }>(`${n0.apiUrl}/mesh/chain/blocks/${h}`)).header.time)
  )
  const intervals = times
    .slice(1)
    .map((tm, i) => tm - (times[i] as number))
    .sort((a, b) => a - b)
  const median = intervals[Math.floor(intervals.length / 2)] as number
  assert.ok(median >= 900 && median <= 1_800, `median block interval ${median} ms for a 1000 ms target (${intervals.join(', ')})`)

  // 2. a transfer submitted to one node is committed and seen by all
  const signer = signerFromPrivateKey(await loadIdentityKey(join(n0.home, 'identity.key')))
  const { chainId } = await chainStatus(n0)
  const tx = signTx({ chainId, from: signer.address, nonce: 0, fee: 1n, body: { type: 'transfer', to: n3.peerId, amount: 777n } }, signer)
  const { hash } = await get<{ hash: string }>(`${n1.apiUrl}/mesh/tx`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tx: Buffer.from(encodeTx(tx)).toString('base64') })
  })
  const committed = await waitFor(
    'the transfer to commit',
    async () => {
      const s = await get<{ status: string; height?: number }>(`${n1.apiUrl}/mesh/tx/${hash}`)
      return s.status === 'committed' ? s : undefined
    },
    20_000
  )
  await waitFor(
    'every node to see the transfer',
    async () => {
      const balances = await Promise.all(
        nodes.map(async (n) => (await get<{ balance: string }>(`${n.apiUrl}/mesh/accounts/${n3.peerId}`)).balance)
      )
      return balances.every((b) => b === '1000000000777') ? true : undefined
    },
    20_000
  )
  assert.ok((committed.height ?? 0) > 0)
  // a replay of the same transaction is refused with its reason
  const replay = await fetch(`${n2.apiUrl}/mesh/tx`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tx: Buffer.from(encodeTx(tx)).toString('base64') })
  })
  assert.equal(replay.status, 400)
  assert.equal(((await replay.json()) as { error: { code: string } }).error.code, 'WRONG_NONCE')

  // 3. kill -9 one validator: the other three keep committing
  process.kill(n3.pid, 'SIGKILL')
  const before = (await chainStatus(n0)).height
  await waitFor('3 more blocks without node 3', async () => ((await chainStatus(n0)).height >= before + 3 ? true : undefined), 30_000, 500)

  // 4. restart it: it catches up to the same hash
  restarted.push(spawnCli(t, ['start', '--home', n3.home]))
  const caughtUp = await waitFor(
    'node 3 to catch up',
    async () => {
      const [a, b] = await Promise.all([chainStatus(n0), chainStatus(n3)])
      return b.height >= a.height - 1 && b.height > before + 3 ? b : undefined
    },
    60_000,
    500
  )
  assert.equal(await blockHashAt(n3, caughtUp.height), await blockHashAt(n0, caughtUp.height))

  // 5. kill two of four: no quorum, no block commits, and no fork
  process.kill(n2.pid, 'SIGKILL')
  const r3 = restarted[0]
  r3?.child.kill('SIGKILL')
  await sleep(2_500) // a block already in flight may still land
  const stalled = (await chainStatus(n0)).height
  await sleep(5_000)
  assert.equal((await chainStatus(n0)).height, stalled, 'no block commits with half the validators down')
  assert.equal((await chainStatus(n1)).height, stalled)
  assert.equal(await blockHashAt(n0, stalled), await blockHashAt(n1, stalled))

  // 6. bring one back: commits resume
  const r2 = spawnCli(t, ['start', '--home', n2.home], { LLMESH_LOG_LEVEL: 'debug' })
  restarted.push(r2)
  let r2out = ''
  r2.child.stdout?.on('data', (d: Buffer) => {
    r2out = (r2out + d.toString()).slice(-20_000)
  })
  try {
    await waitFor('commits to resume', async () => ((await chainStatus(n0)).height >= stalled + 2 ? true : undefined), 90_000, 500)
  } catch (err) {
    const statuses = await Promise.all([n0, n1, n2].map((n) => get(`${n.apiUrl}/mesh/status`).catch((e: Error) => e.message)))
    const log0 = (await readFile(join(n0.home, 'node.log'), 'utf8')).split('\n').slice(-15).join('\n')
    throw new Error(
      `${(err as Error).message}\nstatuses: ${JSON.stringify(statuses)}\nnode-0 log tail:\n${log0}\nrestarted node-2 output tail:\n${r2out.split('\n').slice(-25).join('\n')}`
    )
  }
  const resumed = await waitFor(
    'node 2 to catch up',
    async () => {
      const [a, b] = await Promise.all([chainStatus(n0), chainStatus(n2)])
      return b.height >= stalled + 2 && b.height <= a.height ? b : undefined
    },
    60_000,
    500
  )
  assert.equal(await blockHashAt(n2, resumed.height), await blockHashAt(n0, resumed.height))

  devnet.child.kill('SIGTERM')
  assert.equal((await devnet.done).code, 0)
  for (const r of restarted) r.child.kill('SIGTERM')
})
