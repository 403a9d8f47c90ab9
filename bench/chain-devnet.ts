// Part of npm run bench:chain — the chain of a real 4-validator devnet (four OS processes on this
// machine): transfers committed per second at saturation, submission-to-finality latency, block
// interval. Transfers go in over HTTP from 64 accounts in parallel, each in nonce order to one node,
// several per request through `POST /mesh/txs` (`--per-request 1` sends one per `POST /mesh/tx`).
// `--quick`: 1,024 transfers; `--total N`: N transfers (default 16,384); `--keep`: keep the logs.
import '../src/polyfill.ts'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeTx, signTx, txHash } from '../src/chain/index.ts'
import { loadIdentityKey, signerFromPrivateKey, signerFromSeed } from '../src/crypto/index.ts'

const quick = process.argv.includes('--quick')
const SENDERS = 64
const argValue = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} takes a positive integer`)
  return v
}
const TOTAL = argValue('--total', quick ? 1_024 : 16_384)
/** Transfers per HTTP request (one sender's, consecutive nonces); 1 uses `POST /mesh/tx`. */
const PER_REQUEST = argValue('--per-request', 64)
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const free = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)))
  })

async function freeBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    // below Linux's ephemeral ports (32768 and up): an outgoing connection cannot take one of these
    // between the check and the bind
    const base = 20_000 + Math.floor(Math.random() * 10_000)
    const ports = [0, 1, 2, 3].flatMap((k) => [base + k, base + 1000 + k])
    if ((await Promise.all(ports.map(free))).every(Boolean)) return base
  }
  throw new Error('no free ports')
}

// CPU seconds a process has used (Linux /proc): what the load costs, whatever else runs on the machine
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / TICKS
  } catch {
    return Number.NaN
  }
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) })
  const body = await res.json()
  if (!res.ok) throw new Error(`${url}: ${JSON.stringify(body)}`)
  return body as T
}

const dir = await mkdtemp(join(tmpdir(), 'llmesh-bench-'))
const base = await freeBase()
const devnet: ChildProcess = spawn(
  process.execPath,
  ['bin/llmesh.js', 'devnet', '--dir', join(dir, 'dn'), '--base-port', String(base), '--quiet'],
  { stdio: 'ignore' }
)
try {
  let nodes: Array<{ home: string; apiUrl: string; peerId: string; pid: number }> = []
  for (let i = 0; i < 240 && nodes.length === 0; i++) {
    await sleep(500)
    nodes = await readFile(join(dir, 'dn', 'devnet.json'), 'utf8').then(
      (t) => JSON.parse(t).nodes,
      () => []
    )
  }
  if (nodes.length !== 4) throw new Error('devnet did not start')
  const nodeSigners = await Promise.all(nodes.map(async (n) => signerFromPrivateKey(await loadIdentityKey(join(n.home, 'identity.key')))))
  const { chainId } = await json<{ chainId: string }>(`${nodes[0]?.apiUrl}/mesh/chain/status`)
  const post = (i: number, raw: Uint8Array) =>
    json(`${nodes[i % 4]?.apiUrl}/mesh/tx`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tx: Buffer.from(raw).toString('base64') })
    })
  const postMany = (i: number, raws: Uint8Array[]) =>
    json<{ accepted: number; results: Array<{ status: string; code?: string }> }>(`${nodes[i % 4]?.apiUrl}/mesh/txs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ txs: raws.map((raw) => Buffer.from(raw).toString('base64')) })
    }).then((r) => {
      if (r.accepted !== raws.length)
        throw new Error(`node ${i % 4} refused a transfer: ${JSON.stringify(r.results.find((x) => x.status !== 'pending'))}`)
    })
  // SENDERS accounts send in parallel (each in nonce order to one node); fund them first
  const clients = Array.from({ length: SENDERS }, (_, i) => signerFromSeed(new Uint8Array(32).fill(200).map((b, j) => (j === 0 ? i : b))))
  const funding = clients.map((c, i) => {
    const from = nodeSigners[i % 4]
    if (from == null) throw new Error('signer')
    return {
      node: i % 4,
      raw: encodeTx(
        signTx(
          { chainId, from: from.address, nonce: Math.floor(i / 4), fee: 1n, body: { type: 'transfer', to: c.address, amount: 1_000_000n } },
          from
        )
      )
    }
  })
  for (let k = 0; k < 4; k++) for (const f of funding.filter((x) => x.node === k)) await post(k, f.raw)
  const lastFunding = txHash(funding[funding.length - 1]?.raw ?? new Uint8Array())
  for (let i = 0; i < 120; i++) {
    const s = await json<{ status: string }>(`${nodes[(SENDERS - 1) % 4]?.apiUrl}/mesh/tx/${lastFunding}`).catch(() => ({
      status: 'unknown'
    }))
    if (s.status === 'committed') break
    await sleep(500)
  }
  await sleep(2_500) // the funding block is on every node
  // what the nodes burn with no load (gossip heartbeats, DHT, presence, empty blocks), to subtract
  const nodesCpu = (): number => nodes.reduce((sum, n) => sum + cpuSeconds(n.pid), 0)
  const idleFrom = { cpu: nodesCpu(), at: Date.now() }
  await sleep(5_000)
  const idleCpuPerS = (nodesCpu() - idleFrom.cpu) / ((Date.now() - idleFrom.at) / 1000)
  const perSender = Math.ceil(TOTAL / SENDERS)
  if (perSender * SENDERS !== TOTAL) throw new Error(`--total must be a multiple of ${SENDERS}`)
  const batches = clients.map((s, i) =>
    Array.from({ length: perSender }, (_, nonce) =>
      encodeTx(
        signTx(
          { chainId, from: s.address, nonce, fee: 1n, body: { type: 'transfer', to: nodeSigners[i % 4]?.address ?? '', amount: 1n } },
          s
        )
      )
    )
  )
  const submitted = new Map<string, number>()
  const committed = new Map<string, number>()
  const blockTimes: number[] = []
  let maxTxsPerBlock = 0
  let watching = true
  const start = Date.now()
  const nodesCpuAtStart = nodesCpu()
  const benchCpuAtStart = process.cpuUsage()
  const watch = (async () => {
    let seen = (await json<{ height: number }>(`${nodes[0]?.apiUrl}/mesh/chain/status`)).height
    while (watching) {
      const { height } = await json<{ height: number }>(`${nodes[0]?.apiUrl}/mesh/chain/status`)
      for (let h = seen + 1; h <= height; h++) {
        const b = await json<{ header: { time: number }; txs: Array<{ hash: string }> }>(`${nodes[0]?.apiUrl}/mesh/chain/blocks/${h}`)
        const now = Date.now()
        for (const tx of b.txs) committed.set(tx.hash, now)
        blockTimes.push(b.header.time)
        maxTxsPerBlock = Math.max(maxTxsPerBlock, b.txs.length)
      }
      seen = height
      if (committed.size >= TOTAL) return
      await sleep(50)
    }
  })()
  await Promise.all(
    batches.map(async (batch, i) => {
      for (let k = 0; k < batch.length; k += PER_REQUEST) {
        const chunk = batch.slice(k, k + PER_REQUEST)
        const now = Date.now()
        for (const raw of chunk) submitted.set(txHash(raw), now)
        if (PER_REQUEST === 1) await post(i, chunk[0] as Uint8Array)
        else await postMany(i, chunk)
      }
    })
  )
  const submitDone = Date.now()
  const deadline = Date.now() + 180_000
  while (committed.size < TOTAL && Date.now() < deadline) await sleep(200)
  watching = false
  await watch
  const loadedS = (Date.now() - start) / 1000
  const nodesLoadCpu = nodesCpu() - nodesCpuAtStart - idleCpuPerS * loadedS
  const benchUsage = process.cpuUsage(benchCpuAtStart)
  const benchCpu = (benchUsage.user + benchUsage.system) / 1e6
  const latencies = [...committed].map(([h, t]) => t - (submitted.get(h) ?? t))
  const last = Math.max(...committed.values())
  const intervals = blockTimes.slice(1).map((t, i) => t - (blockTimes[i] as number))
  const usPerTx = (cpu: number) => Math.round((cpu * 1e6) / committed.size)
  console.log(
    `(d) CPU: the 4 nodes idle ${idleCpuPerS.toFixed(2)} CPU-s/s; under load, above idle, ${nodesLoadCpu.toFixed(1)} s = ${usPerTx(nodesLoadCpu)} µs per transfer; this client ${benchCpu.toFixed(1)} s = ${usPerTx(benchCpu)} µs per transfer; ${cpus().length} free cores would carry ${Math.round((cpus().length * committed.size) / (nodesLoadCpu + benchCpu))} transfers/s; load average at the end ${loadavg()[0]?.toFixed(1)}`
  )
  console.log(
    `(d) 4-validator devnet: ${committed.size}/${TOTAL} transfers committed in ${((last - start) / 1000).toFixed(1)} s = ${Math.round(committed.size / ((last - start) / 1000))} transfers/s (submission over HTTP, ${PER_REQUEST} per request, took ${((submitDone - start) / 1000).toFixed(1)} s = ${Math.round(TOTAL / ((submitDone - start) / 1000))}/s); submit-to-final p50 ${pct(latencies, 50)} ms p99 ${pct(latencies, 99)} ms; block interval p50 ${pct(intervals, 50)} ms; up to ${maxTxsPerBlock} transfers per block`
  )
} catch (err) {
  process.exitCode = 1
  console.error(`bench failed (${(err as Error).message}); the devnet's logs are kept in ${dir}/dn/node-*/node.log`)
  throw err
} finally {
  devnet.kill('SIGTERM')
  await new Promise((r) => devnet.once('exit', r))
  if (process.exitCode == null && !process.argv.includes('--keep')) await rm(dir, { recursive: true, force: true })
  else console.log(`the devnet's logs: ${dir}/dn/node-*/node.log`)
}
