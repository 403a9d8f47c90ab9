import { setTimeout as sleep } from 'node:timers/promises'
import type { Connection, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import { acceptSealedSession, bindSealKey, type SealedChannel, type SealKeyPair, type Signer } from '../crypto/index.ts'
import type { MeshLibp2p } from '../p2p/index.ts'
import { HOST_LIMITS, INFER_PROTOCOL } from '../params/index.ts'
import { type InferenceEngine, normalizeGenerateRequest } from './engine.ts'
import { InferenceBusyError, InferenceInputError, InferenceTimeoutError } from './errors.ts'
import { FrameStream, FrameStreamError } from './frame-stream.ts'
import {
  BOX_AAD,
  decodeFrame,
  decodeJob,
  EDGE_BOXED,
  encodeFrame,
  encodeJobResult,
  type Frame,
  FrameWriter,
  type JobErrorCode,
  unpackBox
} from './protocol.ts'
import { ReceiptBatcher, sha256 } from './receipt.ts'

export type HostLimits = { -readonly [K in keyof typeof HOST_LIMITS]: number }

/** Why a host cut a session off (counted by the node's metrics). */
export type SessionRejectReason = 'malformed' | 'too_large' | 'no_hello' | 'bad_seal' | 'duplicate_job'

/**
 * How a host gets paid (src/payments implements it): `admit` checks a job's voucher before it runs
 * (throws an error whose `code` is `payment_required` or `insufficient_quota`) and returns the
 * job's admission, whose `bill` prices the job when it ends (at the price of its admission);
 * `paid` takes a voucher sent after a job.
 */
export interface JobPayments {
  admit(peer: string, model: string, voucher: Uint8Array | undefined, promptBytes: number, maxTokens: number): JobAdmission
  paid(peer: string, voucher: Uint8Array): void
  /** What `peer` owes this host by its books (told at session open, so an edge that restarted can catch up). */
  owedBy(peer: string): bigint
  /** True while a job `peer` was billed for waits for the voucher that pays it (a stopping host waits for it). */
  awaitingPay(peer: string): boolean
}

/** A job's admission: who pays (null: nobody), `bill` once when it ends (returns its cost), `release` whatever happened. */
export interface JobAdmission {
  payer: string | null
  bill(promptTokens: number, completionTokens: number): bigint
  release(): void
}

const UNPAID: JobAdmission = { payer: null, bill: () => 0n, release: () => {} }
/** How often a stopping host looks whether it is drained. */
const DRAIN_POLL_MS = 20

export interface InferenceHostComponents {
  libp2p: MeshLibp2p
  log: Logger
  engine: InferenceEngine
  /** The node's identity: signs receipts and the sealing-key binding. */
  signer: Signer
  sealKeys: SealKeyPair
  now: () => number
  onRejected?: (reason: SessionRejectReason) => void
  /** Payments for priced models; none: every job runs unpaid. */
  payments?: JobPayments
  /** Every job's outcome: `done`, or the error code sent back. */
  onJob?: (outcome: 'done' | JobErrorCode) => void
}

export interface InferenceHostInit {
  limits?: Partial<HostLimits>
}

interface PeerBudget {
  tokens: number
  refilledAt: number
  jobs: number
}

/**
 * Pieces of one job that are ready together go out in one `tok` frame, up to this many UTF-16 code
 * units (at most 3 bytes of UTF-8 each, far below the frame limit).
 */
const MAX_MERGED_PIECE_CHARS = 4_096

/** A `tok` frame queued and not written yet: pieces ready before it goes out join it. */
interface OpenPiece {
  parts: string[]
  chars: number
  built: boolean
}

class SessionRejected extends Error {
  constructor(readonly reason: SessionRejectReason) {
    super(reason)
  }
}

/**
 * The host side of `/llmesh/infer/2.0.0`: accepts sessions from edges, runs their jobs on the
 * engine, streams the sealed answer back and signs a receipt for each finished job. Limits:
 * frame size, sessions per connection, jobs in flight and request rate per peer; the engine
 * bounds its queue and each generation's time. A peer that sends a malformed, oversized or
 * unsealable frame has its session cut off.
 */
export class InferenceHost {
  private readonly c: InferenceHostComponents
  private readonly limits: HostLimits
  private readonly keySig: Uint8Array
  /** Open sessions and their peers. */
  private readonly sessions = new Map<Stream, string>()
  private readonly budgets = new Map<string, PeerBudget>()
  private running = 0
  private stopping = false

  constructor(components: InferenceHostComponents, init: InferenceHostInit = {}) {
    this.c = components
    this.limits = { ...HOST_LIMITS, ...init.limits }
    this.keySig = bindSealKey(components.signer, components.sealKeys.publicKey)
  }

  /** The signature binding the sealing key to this node's identity (adverts carry it). */
  get sealKeySignature(): Uint8Array {
    return this.keySig
  }

  /** Jobs running or waiting in the engine. */
  get activeJobs(): number {
    return this.running
  }

  async start(): Promise<void> {
    await this.c.libp2p.handle(INFER_PROTOCOL, (stream, connection) => this.serve(stream, connection), {
      maxInboundStreams: this.limits.maxSessionsPerConnection,
      maxOutboundStreams: 1
    })
  }

  /**
   * Takes no new session, refuses new jobs as `busy` (an edge tries its next host), waits up to
   * `stopDrainMs` for the running jobs to end and for the vouchers that pay the answered ones,
   * then closes every session. Without the wait, a host stopped right after an answer billed that
   * job but never got the voucher for it (docs/inference.md, Payments).
   */
  async stop(): Promise<void> {
    this.stopping = true
    await this.c.libp2p.unhandle(INFER_PROTOCOL)
    for (let i = 0; i < Math.ceil(this.limits.stopDrainMs / DRAIN_POLL_MS) && !this.drained(); i++) await sleep(DRAIN_POLL_MS)
    for (const stream of this.sessions.keys()) stream.abort(new Error('host stopping'))
    this.sessions.clear()
  }

  /** No job runs and no peer with a session owes this host for a job whose voucher has not come. */
  private drained(): boolean {
    if (this.running > 0) return false
    const payments = this.c.payments
    if (payments === undefined) return true
    for (const peer of this.sessions.values()) if (payments.awaitingPay(peer)) return false
    return true
  }

  private budget(peer: string): PeerBudget {
    let b = this.budgets.get(peer)
    if (b === undefined) {
      b = { tokens: this.limits.requestBurstPerPeer, refilledAt: this.c.now(), jobs: 0 }
      if (this.budgets.size >= this.limits.maxTrackedPeers) {
        for (const [key, old] of this.budgets) {
          if (old.jobs === 0) {
            this.budgets.delete(key)
            break
          }
        }
      }
    } else this.budgets.delete(peer)
    this.budgets.set(peer, b) // most recently used last
    return b
  }

  /** Takes one request from the peer's rate budget; false if it has none left. */
  private admit(b: PeerBudget): JobErrorCode | null {
    const now = this.c.now()
    b.tokens = Math.min(this.limits.requestBurstPerPeer, b.tokens + ((now - b.refilledAt) * this.limits.requestsPerSecondPerPeer) / 1000)
    b.refilledAt = now
    if (b.tokens < 1) return 'rate_limited'
    if (b.jobs >= this.limits.maxJobsPerPeer) return 'busy'
    b.tokens -= 1
    return null
  }

  private async serve(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const frames = new FrameStream(stream, { maxFrameBytes: this.limits.maxFrameBytes })
    const jobs = new Map<number, AbortController>()
    this.sessions.set(stream, peer)
    // frames queued in one turn of the event loop go out in one write; a failed write ends the session
    const writer = new FrameWriter(frames, (err) => {
      if (stream.status === 'open') stream.abort(err)
    })
    const send = (frame: Frame): Promise<void> => writer.write(() => encodeFrame(frame))
    const decode = (bytes: Uint8Array): Frame => {
      try {
        return decodeFrame(bytes)
      } catch {
        throw new SessionRejected('malformed')
      }
    }
    /** The stream's own failures pass; a frame over the size limit cuts the session off. */
    const streamFailure = (err: Error): Error =>
      err instanceof FrameStreamError && err.code === 'FRAME_TOO_LARGE' ? new SessionRejected('too_large') : err
    try {
      const served = this.c.engine.models().map((m) => m.id)
      const owed = this.c.payments?.owedBy(peer) ?? 0n
      await send({ t: 'info', key: this.c.sealKeys.publicKey, sig: this.keySig, models: served, owed })
      const helloSignal = AbortSignal.timeout(this.limits.helloTimeoutMs)
      let helloBytes: Uint8Array
      try {
        helloBytes = await frames.read(helloSignal)
      } catch (err) {
        if (helloSignal.aborted) throw new SessionRejected('no_hello')
        throw streamFailure(err as Error)
      }
      const hello = decode(helloBytes)
      if (hello.t !== 'hello') throw new SessionRejected('malformed')
      let channel: SealedChannel
      try {
        channel = await acceptSealedSession(this.c.sealKeys, hello.enc, peer, this.c.signer.address)
      } catch {
        throw new SessionRejected('bad_seal')
      }
      const receipts = new ReceiptBatcher(this.c.signer)
      writer.sealWith((plain) => channel.seal(plain, BOX_AAD))
      // every later frame is a box, handled as it arrives (synchronously: boxes open in arrival order); the session ends with the stream
      await new Promise<never>((_, reject) => {
        frames.listen(
          (bytes) => this.onBox(peer, decode(bytes), channel, jobs, writer, receipts),
          (err) => reject(streamFailure(err))
        )
      })
    } catch (err) {
      if (err instanceof SessionRejected) {
        this.c.onRejected?.(err.reason)
        this.c.log.debug({ peer, reason: err.reason }, 'inference session cut off')
        stream.abort(new Error(`session rejected: ${err.reason}`))
      } else if (stream.status === 'open') {
        stream.abort(err as Error)
      }
    } finally {
      this.sessions.delete(stream)
      for (const job of jobs.values()) job.abort()
    }
  }

  /** One frame of an open session, a box; throws {@link SessionRejected} to cut the session off. */
  private onBox(
    peer: string,
    box: Frame,
    channel: SealedChannel,
    jobs: Map<number, AbortController>,
    writer: FrameWriter,
    receipts: ReceiptBatcher
  ): void {
    if (box.t !== 'box') throw new SessionRejected('malformed')
    let plain: Uint8Array
    try {
      plain = channel.open(box.body, BOX_AAD)
    } catch {
      throw new SessionRejected('bad_seal')
    }
    let frames: Frame[]
    try {
      frames = unpackBox(plain, EDGE_BOXED)
    } catch {
      throw new SessionRejected('malformed')
    }
    for (const frame of frames) {
      if (frame.t === 'req') {
        if (jobs.has(frame.id)) throw new SessionRejected('duplicate_job')
        this.startJob(peer, frame.id, frame.body, jobs, writer, receipts)
      } else if (frame.t === 'cancel') jobs.get(frame.id)?.abort()
      else if (frame.t === 'pay') this.c.payments?.paid(peer, frame.body)
    }
  }

  private startJob(
    peer: string,
    id: number,
    plain: Uint8Array,
    jobs: Map<number, AbortController>,
    writer: FrameWriter,
    receipts: ReceiptBatcher
  ): void {
    const send = (frame: Frame): Promise<void> => writer.write(() => encodeFrame(frame))
    const fail = (code: JobErrorCode, message: string): void => {
      this.c.onJob?.(code)
      void send({ t: 'err', id, code, message: message.slice(0, 500) }).catch(() => {})
    }
    if (this.stopping) {
      fail('busy', 'this host is stopping')
      return
    }
    const budget = this.budget(peer)
    const refused = this.admit(budget)
    if (refused != null) {
      fail(refused, refused === 'busy' ? `${budget.jobs} jobs of yours are running here` : 'too many requests; slow down')
      return
    }
    let job: { job?: unknown } & Record<string, unknown>
    let request: ReturnType<typeof normalizeGenerateRequest>
    try {
      job = decodeJob(plain) as typeof job
      if (job == null || typeof job !== 'object' || typeof job.job !== 'string' || job.job.length === 0 || job.job.length > 128) {
        fail('invalid_request', 'a job needs a `job` id string of at most 128 characters')
        return
      }
      request = normalizeGenerateRequest(job as never)
    } catch (err) {
      if (err instanceof InferenceInputError) fail(err.code === 'PROMPT_TOO_LARGE' ? 'too_large' : 'invalid_request', err.message)
      else fail('invalid_request', `the job is not DAG-CBOR: ${(err as Error).message}`)
      return
    }
    let admission = UNPAID
    if (this.c.payments != null) {
      try {
        const promptBytes =
          request.input.prompt !== undefined
            ? Buffer.byteLength(request.input.prompt)
            : request.input.messages.reduce((n, m) => n + Buffer.byteLength(m.content) + 16, 0)
        const voucher = job.voucher instanceof Uint8Array ? job.voucher : undefined
        admission = this.c.payments.admit(peer, request.model, voucher, promptBytes, request.params.maxTokens)
      } catch (err) {
        const code = (err as { code?: string }).code === 'insufficient_quota' ? 'insufficient_quota' : 'payment_required'
        fail(code, (err as Error).message)
        return
      }
    }
    const controller = new AbortController()
    let generation: ReturnType<InferenceEngine['generate']>
    try {
      generation = this.c.engine.generate(
        {
          model: request.model,
          ...request.input,
          ...request.params,
          topK: request.params.topK ?? undefined,
          topP: request.params.topP ?? undefined
        },
        { signal: controller.signal }
      )
    } catch (err) {
      if (err instanceof InferenceBusyError) fail('busy', err.message)
      else if (err instanceof InferenceInputError && err.code === 'MODEL_NOT_LOADED')
        fail('unknown_model', `model ${request.model} is not served here`)
      else if (err instanceof InferenceInputError) fail(err.code === 'PROMPT_TOO_LONG' ? 'too_large' : 'invalid_request', err.message)
      else fail('failed', (err as Error).message)
      admission.release()
      return
    }
    jobs.set(id, controller)
    budget.jobs++
    this.running++
    const jobId = job.job as string
    void (async () => {
      try {
        let open: OpenPiece | undefined
        // every piece ready at each step, not one step per piece
        for await (const pieces of generation.batches()) {
          for (const piece of pieces) {
            if (open !== undefined && !open.built && open.chars + piece.length <= MAX_MERGED_PIECE_CHARS) {
              open.parts.push(piece)
              open.chars += piece.length
            } else {
              const tok: OpenPiece = { parts: [piece], chars: piece.length, built: false }
              open = tok
              // built (and sealed, in its box) when its batch is written, with every piece that joined it by then
              void writer
                .write(() => {
                  tok.built = true
                  return encodeFrame({ t: 'tok', id, body: Buffer.from(tok.parts.join(''), 'utf8') })
                })
                .catch(() => {}) // the stream failed: ready() below says so
            }
          }
          const full = writer.ready()
          if (full !== undefined) await full
        }
        const result = await generation.result
        // a job the edge cancelled is not billed: the edge drops its answer, receipt included
        const cost = result.finishReason === 'aborted' ? 0n : admission.bill(result.promptTokens, result.completionTokens)
        // signed when its frame is built: with every other receipt of this session that goes out in the same write
        const receipt = receipts.add({
          v: 1,
          job: jobId,
          model: request.model,
          host: this.c.signer.address,
          client: peer,
          input: sha256(plain),
          output: sha256(result.text),
          promptTokens: result.promptTokens,
          completionTokens: result.completionTokens,
          finish: result.finishReason,
          time: this.c.now(),
          cost,
          payer: admission.payer
        })
        await writer.write(() => {
          const body = encodeJobResult({
            finish: result.finishReason,
            stopSequence: result.stopSequence,
            promptTokens: result.promptTokens,
            completionTokens: result.completionTokens,
            receipt: receipt()
          })
          return encodeFrame({ t: 'end', id, body })
        })
        this.c.onJob?.(result.finishReason === 'aborted' ? 'cancelled' : 'done')
      } catch (err) {
        if (controller.signal.aborted) this.c.onJob?.('cancelled')
        else if (err instanceof InferenceTimeoutError) fail('timeout', err.message)
        // a prompt longer than the model's context is found once it is tokenized, inside the generation
        else if (err instanceof InferenceInputError) fail(err.code === 'PROMPT_TOO_LONG' ? 'too_large' : 'invalid_request', err.message)
        else {
          this.c.log.warn({ peer, err: (err as Error).message }, 'inference job failed')
          fail('failed', (err as Error).message)
        }
      } finally {
        admission.release()
        jobs.delete(id)
        budget.jobs--
        this.running--
      }
    })()
  }
}
