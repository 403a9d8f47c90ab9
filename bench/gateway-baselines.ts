// Baselines for the gateway benchmark (npm run bench:gateway compares the mesh against them):
//  (a) an inference engine called directly: the echo engine, no network, no model;
//  (b) a raw libp2p echo over ONE long-lived stream between two nodes in this process, requests
//      multiplexed on it with a request id in each frame;
// each with 1 and 64 requests in flight. Run alone:
//   node --import tsx --import ./src/polyfill.ts bench/gateway-baselines.ts [seconds=3]
import '../src/polyfill.ts'
import { cpus } from 'node:os'
import { pathToFileURL } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { EchoEngine } from '../src/inference/index.ts'
import { createMeshLibp2p, type MeshLibp2p } from '../src/p2p/index.ts'

export interface BaselineResult {
  name: string
  inFlight: number
  /** Requests completed in the measured window (warm-up excluded). */
  requests: number
  seconds: number
  rps: number
  p50Ms: number
  p99Ms: number
  /**
   * CPU time this process spent per request in the window (user + system, every thread), µs: on a
   * shared machine it moves less than the wall-clock figures.
   */
  cpuUsPerRequest: number
}

export interface BaselineOptions {
  /** Requests kept in flight at once. */
  inFlight: number
  /** The measured window ends after this long, ms (default 3 s) ... */
  durationMs?: number
  /** ... or after this many requests, whichever comes first (default 200,000). */
  maxRequests?: number
  /** Requests sent first and not measured (default 200) ... */
  warmupRequests?: number
  /**
   * ... and the warm-up lasts at least this long, ms (default 1,000): code still being optimized,
   * or nodes that just started, made the first measured second of a row slower than the next ones.
   */
  warmupMs?: number
  /** Size of each prompt or echo payload, bytes (default 200). */
  payloadBytes?: number
}

export const BENCH_ECHO_PROTOCOL = '/llmesh/bench-echo/1'
/** The echo frame: u32 request id (big-endian) then the payload. */
const ID_BYTES = 4
const MAX_FRAME_BYTES = 64 * 1024

/** The `p`-th percentile of ascending `sorted` (NaN if empty). */
export const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN

/**
 * Keeps `inFlight` calls of `one` running until the window or the request count runs out, and
 * measures each call's latency. Each loop is a bounded number of requests, so it always ends.
 */
export async function drive(name: string, options: BaselineOptions, one: () => Promise<void>): Promise<BaselineResult> {
  const inFlight = Math.max(1, Math.floor(options.inFlight))
  const durationMs = options.durationMs ?? 3_000
  const maxRequests = options.maxRequests ?? 200_000
  const warmup = options.warmupRequests ?? 200
  const warmupMs = options.warmupMs ?? 1_000
  const run = async (count: number, deadline: number, latencies: number[] | null, minEnd = 0): Promise<void> => {
    let issued = 0
    const worker = async (): Promise<void> => {
      while ((issued < count || performance.now() < minEnd) && performance.now() < deadline) {
        issued++
        const t0 = performance.now()
        await one()
        latencies?.push(performance.now() - t0)
      }
    }
    await Promise.all(Array.from({ length: inFlight }, worker))
  }
  await run(warmup, Number.POSITIVE_INFINITY, null, performance.now() + warmupMs)
  const latencies: number[] = []
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  await run(maxRequests, started + durationMs, latencies)
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpu0)
  latencies.sort((a, b) => a - b)
  return {
    name,
    inFlight,
    requests: latencies.length,
    seconds,
    rps: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpuUsPerRequest: (cpu.user + cpu.system) / latencies.length
  }
}

/** A prompt of about `bytes` bytes of plain ASCII text. */
export function promptOf(bytes: number): string {
  const words = 'the quick brown fox jumps over the lazy dog while the mesh routes a request to a host '
  return words.repeat(Math.ceil(bytes / words.length)).slice(0, bytes)
}

/** (a) The echo engine called directly: what a request costs with no network in the way. */
export async function benchEngineDirect(options: BaselineOptions): Promise<BaselineResult> {
  const engine = new EchoEngine()
  await engine.start()
  try {
    const model = 'bench-echo'
    await engine.load({ id: model, path: '/echo/needs/no/file.gguf' })
    const prompt = promptOf(options.payloadBytes ?? 200)
    return await drive('(a) echo engine, direct', options, async () => {
      await engine.generate({ model, prompt, maxTokens: 16 }).result
    })
  } finally {
    await engine.stop()
  }
}

async function benchNode(): Promise<MeshLibp2p> {
  const node = await createMeshLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    announce: [],
    maxConnections: 16,
    localNetwork: true
  })
  await node.start()
  return node
}

/** The server side: echoes every frame back on the stream it came on, until the stream ends. */
async function echoFrames(stream: Stream): Promise<void> {
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
  try {
    while (stream.status === 'open') await lp.write(await lp.read())
  } catch (err) {
    // the client closing its end is the normal way out (the read then fails on EOF): close ours too
    if (stream.readableEnded) await stream.close().catch(() => {})
    else if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

/**
 * The client side of one long-lived stream: requests carry an id, responses are matched by it,
 * so any number of requests share the stream.
 */
class MultiplexedEchoClient {
  private readonly lp
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: unknown) => void }>()
  private nextId = 0
  private readonly reading: Promise<void>

  constructor(
    private readonly stream: Stream,
    private readonly payload: Uint8Array
  ) {
    this.lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    this.reading = this.readLoop()
  }

  async request(): Promise<void> {
    const id = this.nextId
    this.nextId = (this.nextId + 1) >>> 0
    const frame = new Uint8Array(ID_BYTES + this.payload.byteLength)
    new DataView(frame.buffer).setUint32(0, id)
    frame.set(this.payload, ID_BYTES)
    const answered = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }))
    await this.lp.write(frame)
    await answered
  }

  async close(): Promise<void> {
    await this.stream.close()
    await this.reading
  }

  private async readLoop(): Promise<void> {
    try {
      while (this.stream.status === 'open') {
        const frame = await this.lp.read()
        if (frame.byteLength !== ID_BYTES + this.payload.byteLength) throw new Error(`echo frame of ${frame.byteLength} bytes`)
        const id = frame.getUint32(0)
        const waiter = this.pending.get(id)
        if (waiter == null) throw new Error(`echo for unknown request ${id}`)
        this.pending.delete(id)
        waiter.resolve()
      }
    } catch (err) {
      for (const waiter of this.pending.values()) waiter.reject(err)
      this.pending.clear()
    }
  }
}

/** (b) Two libp2p nodes in this process, one long-lived stream, requests multiplexed on it by id. */
export async function benchLibp2pEcho(options: BaselineOptions): Promise<BaselineResult> {
  const server = await benchNode()
  const client = await benchNode()
  try {
    await server.handle(BENCH_ECHO_PROTOCOL, (stream) => echoFrames(stream))
    const address = server.getMultiaddrs().find((a) => a.toString().includes('/127.0.0.1/'))
    if (address == null) throw new Error('the bench server has no loopback address')
    const stream = await client.dialProtocol(address, BENCH_ECHO_PROTOCOL)
    const payload = new TextEncoder().encode(promptOf(options.payloadBytes ?? 200))
    const echo = new MultiplexedEchoClient(stream, payload)
    try {
      return await drive('(b) libp2p echo, one stream', options, () => echo.request())
    } finally {
      await echo.close()
    }
  } finally {
    await Promise.all([client.stop(), server.stop()])
  }
}

/** Runs both baselines at 1 and 64 in flight and prints them as a table. */
export async function main(seconds = 3): Promise<BaselineResult[]> {
  console.log(`gateway-baselines  ${new Date().toISOString()}  node ${process.version}  ${cpus().length} x ${cpus()[0]?.model}`)
  const results: BaselineResult[] = []
  for (const inFlight of [1, 64]) {
    results.push(await benchEngineDirect({ inFlight, durationMs: seconds * 1000 }))
    results.push(await benchLibp2pEcho({ inFlight, durationMs: seconds * 1000 }))
  }
  console.log('| baseline | in flight | requests | s | req/s | p50 ms | p99 ms | CPU µs/req | x (a) req/s |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const r of results) {
    const engine = results.find((x) => x.name.startsWith('(a)') && x.inFlight === r.inFlight)
    const ratio = engine == null ? Number.NaN : r.rps / engine.rps
    console.log(
      `| ${r.name} | ${r.inFlight} | ${r.requests} | ${r.seconds.toFixed(2)} | ${Math.round(r.rps)} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.cpuUsPerRequest.toFixed(1)} | ${ratio.toFixed(3)} |`
    )
  }
  return results
}

if (process.argv[1] != null && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const seconds = Number(process.argv[2] ?? 3)
  await main(Number.isFinite(seconds) && seconds > 0 ? seconds : 3)
}
