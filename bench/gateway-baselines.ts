// Baselines for the gateway benchmark (npm run bench:gateway compares the mesh against them):
//  (a) an inference engine called directly: the echo engine, no network, no model;
//  (b) a raw libp2p echo over ONE long-lived stream between two nodes in this process, requests
//      multiplexed on it with a request id in each frame;
//  (b') (b) plus the work the issue requires of every request, with nothing else: the server runs
//      the echo engine on the request, the request and the answer are sealed (ChaCha20-Poly1305,
//      as the mesh's boxes), the server hashes input and output and signs them (a receipt's
//      SHA-256s and Ed25519 signature), the client hashes both (the edge's receipt check). A floor
//      for any design that meets the issue: what (c) may spend beyond it is its own protocol.
// each with 1 and 64 requests in flight. Run alone:
//   node --import tsx --import ./src/polyfill.ts bench/gateway-baselines.ts [seconds=3]
import '../src/polyfill.ts'
import { cpus } from 'node:os'
import { pathToFileURL } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { aeadOpen, aeadSeal } from '../src/crypto/aead.ts'
import { ed25519Sign, keyPairFromSeed } from '../src/crypto/ed25519.ts'
import { EchoEngine } from '../src/inference/index.ts'
import { sha256 } from '../src/inference/receipt.ts'
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

/** What a client puts in each request frame after the id, and how it checks the answer's. */
interface EchoCodec {
  request(): Uint8Array
  /** Throws unless `frame` (the request's id, then the answer) answers a request of this codec. */
  check(frame: { byteLength: number; subarray(start: number): Uint8Array }): void
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
    private readonly codec: EchoCodec
  ) {
    this.lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    this.reading = this.readLoop()
  }

  async request(): Promise<void> {
    const id = this.nextId
    this.nextId = (this.nextId + 1) >>> 0
    const body = this.codec.request()
    const frame = new Uint8Array(ID_BYTES + body.byteLength)
    new DataView(frame.buffer).setUint32(0, id)
    frame.set(body, ID_BYTES)
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
        if (frame.byteLength < ID_BYTES) throw new Error(`echo frame of ${frame.byteLength} bytes`)
        const id = frame.getUint32(0)
        const waiter = this.pending.get(id)
        if (waiter == null) throw new Error(`echo for unknown request ${id}`)
        this.codec.check(frame)
        this.pending.delete(id)
        waiter.resolve()
      }
    } catch (err) {
      for (const waiter of this.pending.values()) waiter.reject(err)
      this.pending.clear()
    }
  }
}

/** A way to send requests, open until `close`. */
export interface RequestPath {
  one: () => Promise<void>
  close: () => Promise<void>
}

/** Two libp2p nodes in this process, one long-lived stream served by `serve`, requests of `codec` multiplexed on it. */
async function openEchoStream(serve: (stream: Stream) => Promise<void>, codec: EchoCodec): Promise<RequestPath> {
  const server = await benchNode()
  const client = await benchNode()
  const stop = (): Promise<unknown> => Promise.all([client.stop(), server.stop()])
  try {
    await server.handle(BENCH_ECHO_PROTOCOL, serve)
    const address = server.getMultiaddrs().find((a) => a.toString().includes('/127.0.0.1/'))
    if (address == null) throw new Error('the bench server has no loopback address')
    const echo = new MultiplexedEchoClient(await client.dialProtocol(address, BENCH_ECHO_PROTOCOL), codec)
    return {
      one: () => echo.request(),
      close: async () => {
        await echo.close().finally(stop)
      }
    }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Opens `path`, drives it with `options`, closes it. */
async function driveOnce(name: string, options: BaselineOptions, path: Promise<RequestPath>): Promise<BaselineResult> {
  const p = await path
  try {
    return await drive(name, options, p.one)
  } finally {
    await p.close()
  }
}

/** (b) Two libp2p nodes in this process, one long-lived stream, requests multiplexed on it by id. */
export function openLibp2pEcho(payloadBytes = 200): Promise<RequestPath> {
  const payload = new TextEncoder().encode(promptOf(payloadBytes))
  return openEchoStream(echoFrames, {
    request: () => payload,
    check: (frame) => {
      if (frame.byteLength !== ID_BYTES + payload.byteLength) throw new Error(`echo frame of ${frame.byteLength} bytes`)
    }
  })
}

export const LIBP2P_ECHO = '(b) libp2p echo, one stream'

export function benchLibp2pEcho(options: BaselineOptions): Promise<BaselineResult> {
  return driveOnce(LIBP2P_ECHO, options, openLibp2pEcho(options.payloadBytes))
}

const NONCE_BYTES = 12
const FLOOR_AAD = new TextEncoder().encode('llmesh bench floor')
/** The fields of a receipt besides its two hashes (job and model ids, host and client addresses, counts, time): signed with them. */
const RECEIPT_FIELDS_BYTES = 180

/** `plain` sealed under `key` with a fresh nonce from `counter`: the nonce, then the sealed bytes. */
function sealWithCounter(key: Uint8Array, counter: number, plain: Uint8Array): Uint8Array {
  const out = new Uint8Array(NONCE_BYTES + plain.byteLength + 16)
  new DataView(out.buffer).setUint32(NONCE_BYTES - 4, counter)
  out.set(aeadSeal(key, out.subarray(0, NONCE_BYTES), plain, FLOOR_AAD), NONCE_BYTES)
  return out
}

function openWithNonce(key: Uint8Array, box: Uint8Array): Uint8Array {
  return aeadOpen(key, box.subarray(0, NONCE_BYTES), box.subarray(NONCE_BYTES), FLOOR_AAD)
}

/**
 * (b') (b) plus the per-request work the issue requires (sealing both ways, the engine, a signed
 * receipt's hashes and signature, the client's hash check) and nothing else: no request or
 * receipt encoding, routing, admission or payments. Keys are made once, as a session's are. The
 * server answers one request at a time: a floor for 1 in flight, not for many.
 */
export async function openLibp2pEchoFloor(payloadBytes = 200): Promise<RequestPath> {
  const key = new Uint8Array(32).fill(7)
  const { secretKey } = keyPairFromSeed(new Uint8Array(32).fill(9))
  const engine = new EchoEngine()
  await engine.start()
  const model = 'bench-echo'
  await engine.load({ id: model, path: '/echo/needs/no/file.gguf' })
  const prompt = promptOf(payloadBytes)
  const payload = new TextEncoder().encode(prompt)
  const want = prompt.slice(0, 16)
  const decoder = new TextDecoder()
  let clientCounter = 0
  let serverCounter = 0
  const serve = async (stream: Stream): Promise<void> => {
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    const signed = new Uint8Array(64 + RECEIPT_FIELDS_BYTES)
    try {
      while (stream.status === 'open') {
        const frame = (await lp.read()).subarray()
        const input = openWithNonce(key, frame.subarray(ID_BYTES))
        const result = await engine.generate({ model, prompt: decoder.decode(input), maxTokens: 16 }).result
        const output = Buffer.from(result.text)
        signed.set(sha256(input), 0)
        signed.set(sha256(output), 32)
        const answer = Buffer.concat([ed25519Sign(secretKey, signed), output])
        const reply = new Uint8Array(ID_BYTES + NONCE_BYTES + answer.byteLength + 16)
        reply.set(frame.subarray(0, ID_BYTES))
        reply.set(sealWithCounter(key, 2 ** 31 + serverCounter++, answer), ID_BYTES)
        await lp.write(reply)
      }
    } catch (err) {
      if (stream.readableEnded) await stream.close().catch(() => {})
      else if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
  try {
    const path = await openEchoStream(serve, {
      request: () => sealWithCounter(key, clientCounter++, payload),
      check: (frame) => {
        const opened = openWithNonce(key, frame.subarray(ID_BYTES))
        const text = decoder.decode(opened.subarray(64))
        sha256(payload)
        sha256(text)
        if (text !== want) throw new Error(`the floor server answered ${JSON.stringify(text)}`)
      }
    })
    return { one: path.one, close: () => path.close().finally(() => engine.stop()) }
  } catch (err) {
    await engine.stop()
    throw err
  }
}

export const LIBP2P_ECHO_FLOOR = "(b') (b) + engine, sealing, receipt hashes and signature"

export function benchLibp2pEchoFloor(options: BaselineOptions): Promise<BaselineResult> {
  return driveOnce(LIBP2P_ECHO_FLOOR, options, openLibp2pEchoFloor(options.payloadBytes))
}

/** Runs the baselines at 1 and 64 in flight and prints them as a table. */
export async function main(seconds = 3): Promise<BaselineResult[]> {
  console.log(`gateway-baselines  ${new Date().toISOString()}  node ${process.version}  ${cpus().length} x ${cpus()[0]?.model}`)
  const results: BaselineResult[] = []
  for (const inFlight of [1, 64]) {
    results.push(await benchEngineDirect({ inFlight, durationMs: seconds * 1000 }))
    results.push(await benchLibp2pEcho({ inFlight, durationMs: seconds * 1000 }))
    // (b') answers one request at a time: a floor at 1 in flight only
    if (inFlight === 1) results.push(await benchLibp2pEchoFloor({ inFlight, durationMs: seconds * 1000 }))
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
