// Part of npm run bench:chain — the chain of a real 4-validator devnet (four OS processes on this
// machine): transfers committed per second at saturation, submission-to-finality latency, block
// interval. Transfers go in over HTTP, four senders in parallel, each to its own node.
import '../src/polyfill.ts'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeTx, signTx, txHash } from '../src/chain/index.ts'
import { loadIdentityKey, signerFromPrivateKey } from '../src/crypto/index.ts'

const quick = process.argv.includes('--quick')
const TOTAL = quick ? 1_000 : 8_000
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
    const base = 20_000 + Math.floor(Math.random() * 30_000)
    const ports = [0, 1, 2, 3].flatMap((k) => [base + k, base + 1000 + k])
    if ((await Promise.all(ports.map(free))).every(Boolean)) return base
  }
  throw new Error('no free ports')
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
  let nodes: Array<{ home: string; apiUrl: string; peerId: string }> = []
  for (let i = 0; i < 240 && nodes.length === 0; i++) {
    await sleep(500)
    nodes = await readFile(join(dir, 'dn', 'devnet.json'), 'utf8').then(
      (t) => JSON.parse(t).nodes,
      () => []
    )
  }
  if (nodes.length !== 4) throw new Error('devnet did not start')
  const signers = await Promise.all(nodes.map(async (n) => signerFromPrivateKey(await loadIdentityKey(join(n.home, 'identity.key')))))
  const { chainId } = await json<{ chainId: string }>(`${nodes[0]?.apiUrl}/mesh/chain/status`)
  const perSender = TOTAL / 4
  const batches = signers.map((s, i) =>
    Array.from({ length: perSender }, (_, nonce) =>
      encodeTx(
        signTx(
          { chainId, from: s.address, nonce, fee: 1n, body: { type: 'transfer', to: signers[(i + 1) % 4]?.address ?? '', amount: 1n } },
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
      for (const raw of batch) {
        submitted.set(txHash(raw), Date.now())
        await json(`${nodes[i]?.apiUrl}/mesh/tx`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ tx: Buffer.from(raw).toString('base64') })
        })
      }
    })
  )
  const submitDone = Date.now()
  const deadline = Date.now() + 180_000
  while (committed.size < TOTAL && Date.now() < deadline) await sleep(200)
  watching = false
  await watch
  const latencies = [...committed].map(([h, t]) => t - (submitted.get(h) ?? t))
  const last = Math.max(...committed.values())
  const intervals = blockTimes.slice(1).map((t, i) => t - (blockTimes[i] as number))
  console.log(
    `(d) 4-validator devnet: ${committed.size}/${TOTAL} transfers committed in ${((last - start) / 1000).toFixed(1)} s = ${Math.round(committed.size / ((last - start) / 1000))} transfers/s (submission over HTTP took ${((submitDone - start) / 1000).toFixed(1)} s = ${Math.round(TOTAL / ((submitDone - start) / 1000))}/s); submit-to-final p50 ${pct(latencies, 50)} ms p99 ${pct(latencies, 99)} ms; block interval p50 ${pct(intervals, 50)} ms; up to ${maxTxsPerBlock} transfers per block`
  )
} finally {
  devnet.kill('SIGTERM')
  await new Promise((r) => devnet.once('exit', r))
  await rm(dir, { recursive: true, force: true })
}
