import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { equals } from 'uint8arrays/equals'
import { type Address, openSealedSession, type SealedChannel, SignatureVerifier, verifySealKey } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import type { MeshLibp2p } from '../p2p/index.ts'
import { EDGE_DEFAULTS, HOST_LIMITS, INFER_PROTOCOL } from '../params/index.ts'
import { FrameStream } from './frame-stream.ts'
import {
  BOX_AAD,
  decodeFrame,
  decodeJobResult,
  encodeFrame,
  encodeJob,
  type Frame,
  FrameWriter,
  HOST_BOXED,
  type Job,
  type JobErrorCode,
  type JobResult,
  unpackBox
} from './protocol.ts'
import { type Receipt, ReceiptChecker, sha256 } from './receipt.ts'

export type HostErrorCode = JobErrorCode | 'unreachable' | 'session_closed' | 'bad_host'

/** A host refused or failed a job (`code`), or could not be reached or trusted. */
export class HostError extends LlmeshError<HostErrorCode> {
  readonly host: string
  constructor(code: HostErrorCode, host: string, message: string, cause?: unknown) {
    super(code, message, { cause })
    this.host = host
  }

  /** True if another host may well succeed with the same request. */
  get retryable(): boolean {
    return !['invalid_request', 'too_large', 'cancelled', 'payment_required', 'insufficient_quota'].includes(this.code)
  }
}

export interface JobOutcome {
  /** The job's number in its session. */
  id: number
  text: string
  result: JobResult
  receipt: Receipt
  /** The receipt's canonical bytes, as the host signed them. */
  receiptBytes: Uint8Array
}

/** A job started on a session: its number, its outcome, and a way to cancel it. */
export interface RunningJob {
  id: number
  outcome: Promise<JobOutcome>
  cancel(): void
}

interface PendingJob {
  jobId: string
  model: string
  input: Uint8Array
  pieces: string[]
  onToken: (text: string) => void
  resolve: (outcome: JobOutcome) => void
  reject: (err: Error) => void
}

export interface HostSessionComponents {
  libp2p: MeshLibp2p
  log: Logger
  verifier: SignatureVerifier
  /** This node's address (the `client` of every receipt). */
  self: Address
  /** Receipt signatures are checked on a session's first receipt, then once per this interval (default {@link EDGE_DEFAULTS}). */
  receiptCheckIntervalMs?: number
  /** Milliseconds, for the receipt check interval (default `performance.now`). */
  now?: () => number
}

const textDecoder = new TextDecoder('utf-8', { fatal: false })

/**
 * The edge's end of one session with a host: a long-lived stream over which jobs are multiplexed.
 * Every sealed frame from the host is opened in arrival order (the channel's counters require
 * it), whether or not its job is still wanted.
 */
export class HostSession {
  readonly host: Address
  /** Model CIDs the host said it serves when the session opened. */
  readonly models: ReadonlySet<string>
  /** What the host said this edge owes it when the session opened. */
  readonly claimedOwed: bigint
  private readonly c: HostSessionComponents
  private readonly stream: Stream
  /** Requests and cancels queued in one turn of the event loop go out in one write. */
  private readonly writer: FrameWriter
  private readonly channel: SealedChannel
  private readonly jobs = new Map<number, PendingJob>()
  private readonly receipts: ReceiptChecker
  /** When this session last checked a receipt's signature (undefined: never). */
  private signatureCheckedAt: number | undefined
  private nextId = 0
  private closedWith: Error | undefined
  private readonly onClose: () => void

  private constructor(
    c: HostSessionComponents,
    host: Address,
    stream: Stream,
    frames: FrameStream,
    channel: SealedChannel,
    models: string[],
    claimedOwed: bigint,
    onClose: () => void,
    receipts: ReceiptChecker
  ) {
    this.claimedOwed = claimedOwed
    this.c = c
    this.receipts = receipts
    this.host = host
    this.stream = stream
    this.writer = new FrameWriter(frames, (err) => this.close(err))
    this.writer.sealWith((plain) => channel.seal(plain, BOX_AAD))
    this.channel = channel
    this.models = new Set(models)
    this.onClose = onClose
    // frames from the host are handled as they arrive, in order; the session ends with the stream
    frames.listen(
      (bytes) => this.onBox(decodeFrame(bytes)),
      (err) => this.close(err)
    )
  }

  /**
   * Dials the host, checks its sealing key binding and opens the sealed session. Receipts are
   * checked with `receipts` (default: a new checker).
   */
  static async open(
    c: HostSessionComponents,
    host: Address,
    signal: AbortSignal,
    onClose: () => void,
    receipts: ReceiptChecker = new ReceiptChecker()
  ): Promise<HostSession> {
    let stream: Stream
    try {
      stream = await c.libp2p.dialProtocol(peerIdFromString(host), INFER_PROTOCOL, { signal })
    } catch (err) {
      throw new HostError('unreachable', host, `cannot open an inference session with ${host}: ${(err as Error).message}`, err)
    }
    const frames = new FrameStream(stream, { maxFrameBytes: HOST_LIMITS.maxFrameBytes })
    try {
      const info = decodeFrame(await frames.read(signal))
      if (info.t !== 'info') throw new HostError('bad_host', host, `host ${host} did not start with its key`)
      if (!verifySealKey(c.verifier, host, info.key, info.sig)) {
        throw new HostError('bad_host', host, `host ${host} sent a sealing key it did not sign`)
      }
      const { enc, channel } = await openSealedSession(info.key, c.self, host)
      signal.throwIfAborted()
      await frames.write(encodeFrame({ t: 'hello', enc }))
      return new HostSession(c, host, stream, frames, channel, info.models, BigInt(info.owed), onClose, receipts)
    } catch (err) {
      stream.abort(err as Error)
      if (err instanceof HostError) throw err
      throw new HostError('unreachable', host, `inference session with ${host} failed to open: ${(err as Error).message}`, err)
    }
  }

  get closed(): boolean {
    return this.closedWith != null
  }

  /** Jobs in flight on this session. */
  get inFlight(): number {
    return this.jobs.size
  }

  /**
   * Starts a job and returns its handle: `onToken` gets each piece of text as it arrives;
   * `outcome` resolves with the whole text, the result and the checked receipt; `cancel()` cancels
   * the job on the host (`outcome` then rejects with `cancelled`). No AbortSignal per job: the
   * edge's hot path makes one job per request.
   */
  start(job: Job, onToken: (text: string) => void): RunningJob {
    if (this.closedWith != null) {
      const outcome = Promise.reject(this.closedWith)
      outcome.catch(() => {})
      return { id: -1, outcome, cancel: () => {} }
    }
    const id = this.nextId
    this.nextId = (this.nextId + 1) % 2 ** 32
    const input = encodeJob(job)
    let resolve: PendingJob['resolve'] = () => {}
    let reject: PendingJob['reject'] = () => {}
    const outcome = new Promise<JobOutcome>((res, rej) => {
      resolve = res
      reject = rej
    })
    this.jobs.set(id, { jobId: job.job, model: job.model, input, pieces: [], onToken, resolve, reject })
    const cancel = (): void => {
      if (this.jobs.get(id)?.resolve !== resolve) return
      this.jobs.delete(id)
      reject(new HostError('cancelled', this.host, 'the job was cancelled'))
      if (this.closedWith == null) void this.writer.write(() => encodeFrame({ t: 'cancel', id })).catch(() => {})
    }
    // sealed, in a box, when its batch is written; a failed write closes the session (the writer's onError)
    void this.writer.write(() => encodeFrame({ t: 'req', id, body: input })).catch(() => {})
    return { id, outcome, cancel }
  }

  /** Sends a voucher after job `id` (the payment for it); best effort: the next job's voucher covers it too. */
  pay(id: number, voucher: Uint8Array): void {
    if (this.closedWith != null) return
    void this.writer.write(() => encodeFrame({ t: 'pay', id, body: voucher })).catch(() => {})
  }

  close(err: Error = new HostError('session_closed', this.host, 'session closed')): void {
    if (this.closedWith != null) return
    this.closedWith =
      err instanceof HostError ? err : new HostError('session_closed', this.host, `session with ${this.host} closed: ${err.message}`, err)
    for (const job of this.jobs.values()) job.reject(this.closedWith)
    this.jobs.clear()
    if (this.stream.status === 'open') this.stream.abort(this.closedWith)
    this.onClose()
  }

  /** A box from the host: every frame in it, in order; anything else ends the session. */
  private onBox(box: Frame): void {
    if (box.t !== 'box') throw new HostError('bad_host', this.host, `host sent an unexpected ${box.t} frame`)
    for (const frame of unpackBox(this.channel.open(box.body, BOX_AAD), HOST_BOXED)) this.dispatch(frame)
  }

  private dispatch(frame: Frame): void {
    if (frame.t === 'tok') {
      const text = textDecoder.decode(frame.body)
      const job = this.jobs.get(frame.id)
      if (job === undefined) return
      job.pieces.push(text)
      job.onToken(text)
    } else if (frame.t === 'end') {
      const result = decodeJobResult(frame.body)
      const job = this.jobs.get(frame.id)
      if (job === undefined) return
      this.jobs.delete(frame.id)
      const text = job.pieces.join('')
      try {
        job.resolve({ id: frame.id, text, result, receipt: this.checkReceipt(job, result, text), receiptBytes: result.receipt })
      } catch (err) {
        job.reject(err as Error)
      }
    } else if (frame.t === 'err') {
      const job = this.jobs.get(frame.id)
      if (job === undefined) return
      this.jobs.delete(frame.id)
      job.reject(new HostError(frame.code, this.host, frame.message))
    } else {
      throw new HostError('bad_host', this.host, `host sent an unexpected ${frame.t} frame`)
    }
  }

  /**
   * The receipt must be the host's, for this job, over exactly what was sent and received. Its
   * fields are checked every time; its signature on the session's first receipt, then once per
   * `receiptCheckIntervalMs`: the sealed channel already proves the host sent it (only the host's
   * sealing key opens it), the signature is what lets others check it. A bad signature closes
   * the session: a host that signs falsely is dropped.
   */
  private checkReceipt(job: PendingJob, result: JobResult, text: string): Receipt {
    const now = (this.c.now ?? performance.now.bind(performance))()
    const interval = this.c.receiptCheckIntervalMs ?? EDGE_DEFAULTS.receiptCheckIntervalMs
    let receipt: Receipt
    if (this.signatureCheckedAt === undefined || now - this.signatureCheckedAt >= interval) {
      try {
        receipt = this.receipts.verify(result.receipt)
      } catch (err) {
        const error = new HostError(
          'bad_host',
          this.host,
          `host ${this.host} sent a receipt that does not verify: ${(err as Error).message}`,
          err
        )
        queueMicrotask(() => this.close(error))
        throw error
      }
      this.signatureCheckedAt = now
    } else receipt = this.receipts.read(result.receipt)
    const bad = (what: string): HostError => new HostError('bad_host', this.host, `host ${this.host} sent a receipt with ${what}`)
    if (receipt.host !== this.host) throw bad('another host')
    if (receipt.client !== this.c.self || receipt.job !== job.jobId) throw bad('another job')
    if (!equals(receipt.input, sha256(job.input))) throw bad('a different input')
    if (!equals(receipt.output, sha256(text))) throw bad('a different output')
    if (receipt.promptTokens !== result.promptTokens || receipt.completionTokens !== result.completionTokens)
      throw bad('other token counts')
    if (receipt.finish !== result.finish) throw bad('another finish reason')
    if (receipt.model !== job.model) throw bad('another model')
    return receipt
  }
}

/**
 * The edge's sessions with hosts: at most one open session per host, opened on first use and
 * reused by every later job; a session that breaks is dropped and the next job opens a new one.
 */
export class HostSessions {
  private readonly c: HostSessionComponents
  private readonly open = new Map<Address, Promise<HostSession>>()
  /**
   * Checks receipts: its verifier keeps the parsed host keys but no results (every receipt is
   * new); the checker itself remembers the last few batch signatures it found good, so the
   * receipts of one batch cost one signature check.
   */
  private readonly receipts = new ReceiptChecker(new SignatureVerifier())

  constructor(components: HostSessionComponents) {
    this.c = components
  }

  get(host: Address, timeoutMs: number = EDGE_DEFAULTS.sessionTimeoutMs): Promise<HostSession> {
    let session = this.open.get(host)
    if (session === undefined) {
      session = HostSession.open(
        this.c,
        host,
        AbortSignal.timeout(timeoutMs),
        () => {
          if (this.open.get(host) === session) this.open.delete(host)
        },
        this.receipts
      )
      session.catch(() => {
        if (this.open.get(host) === session) this.open.delete(host)
      })
      this.open.set(host, session)
    }
    return session
  }

  /** Hosts with an open session (or one opening). */
  hosts(): Address[] {
    return [...this.open.keys()]
  }

  async closeAll(): Promise<void> {
    const sessions = [...this.open.values()]
    this.open.clear()
    for (const s of await Promise.allSettled(sessions)) if (s.status === 'fulfilled') s.value.close()
  }
}
