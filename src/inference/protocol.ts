import * as dagCbor from '@ipld/dag-cbor'
import { LlmeshError } from '../errors/index.ts'
import { HOST_LIMITS, INFERENCE_LIMITS } from '../params/index.ts'
import type { ChatMessage, FinishReason, NormalizedRequest } from './engine.ts'

/**
 * The frames of `/llmesh/infer/1.0.0` (see docs/protocols.md). One stream is one session
 * between an edge and a host, kept open and shared by many jobs:
 *
 *   host → edge  info   { key, sig, models, owed }   once, first: the host's sealing key and its binding, and what the peer owes it
 *   edge → host  hello  { enc }                       once: opens the sealed session (HPKE)
 *   edge → host  req    { id, body: sealed job }      starts job `id`
 *   edge → host  cancel { id }                        stops job `id`
 *   edge → host  pay    { id, body: sealed voucher }  a later voucher after job `id` (pays for it)
 *   host → edge  tok    { id, body: sealed text }     a piece of the answer
 *   host → edge  end    { id, body: sealed result }   the job finished; the result carries the signed receipt
 *   host → edge  err    { id, code, message }         the job failed (codes: {@link JOB_ERROR_CODES})
 *
 * Frames are length-prefixed DAG-CBOR maps of at most `HOST_LIMITS.maxFrameBytes`. Sealed
 * bodies are opened in the order their frames travel; the frame's type and id are their
 * associated data. Anything else ends the session.
 */

export type JobErrorCode = (typeof JOB_ERROR_CODES)[number]

/**
 * `busy` and `rate_limited`: the host refuses for now (the edge tries another); `unknown_model`:
 * not served here; `invalid_request` and `too_large`: the request itself is wrong; `timeout`,
 * `failed`: the job broke; `cancelled`: the edge cancelled it; `payment_required`: the model
 * has a price and the job came with no voucher or a bad one; `insufficient_quota`: the payer's
 * escrow cannot cover it.
 */
export const JOB_ERROR_CODES = [
  'busy',
  'rate_limited',
  'unknown_model',
  'invalid_request',
  'too_large',
  'timeout',
  'failed',
  'cancelled',
  'payment_required',
  'insufficient_quota'
] as const

export type Frame =
  | { t: 'info'; key: Uint8Array; sig: Uint8Array; models: string[]; owed: bigint | number }
  | { t: 'hello'; enc: Uint8Array }
  | { t: 'req'; id: number; body: Uint8Array }
  | { t: 'cancel'; id: number }
  | { t: 'pay'; id: number; body: Uint8Array }
  | { t: 'tok'; id: number; body: Uint8Array }
  | { t: 'end'; id: number; body: Uint8Array }
  | { t: 'err'; id: number; code: JobErrorCode; message: string }

export class FrameError extends LlmeshError<'FRAME_TOO_LARGE' | 'FRAME_MALFORMED'> {}

const MAX_JOB_ID = 2 ** 32 - 1
const MAX_ERROR_MESSAGE = 512
const MAX_INFO_MODELS = HOST_LIMITS.maxAdvertModels

export function encodeFrame(frame: Frame): Uint8Array {
  return dagCbor.encode(frame)
}

function malformed(why: string): FrameError {
  return new FrameError('FRAME_MALFORMED', `malformed inference frame: ${why}`)
}

const isId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_JOB_ID
const isBytes = (v: unknown, max: number): v is Uint8Array => v instanceof Uint8Array && v.byteLength <= max

/** Decodes and checks one frame; throws {@link FrameError} for anything that is not exactly a frame. */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.byteLength > HOST_LIMITS.maxFrameBytes) {
    throw new FrameError('FRAME_TOO_LARGE', `frame of ${bytes.byteLength} bytes is over the ${HOST_LIMITS.maxFrameBytes}-byte limit`)
  }
  let v: Record<string, unknown>
  try {
    v = dagCbor.decode(bytes)
  } catch (err) {
    throw malformed((err as Error).message)
  }
  if (v == null || typeof v !== 'object' || Array.isArray(v)) throw malformed('not a map')
  const keys = Object.keys(v).length
  const max = HOST_LIMITS.maxFrameBytes
  switch (v.t) {
    case 'info':
      if (
        keys !== 5 ||
        !isBytes(v.key, 64) ||
        !isBytes(v.sig, 64) ||
        !Array.isArray(v.models) ||
        v.models.length > MAX_INFO_MODELS ||
        !((Number.isSafeInteger(v.owed) && (v.owed as number) >= 0) || (typeof v.owed === 'bigint' && v.owed >= 0n && v.owed < 2n ** 64n))
      )
        throw malformed('bad info')
      for (const m of v.models) if (typeof m !== 'string' || m.length > INFERENCE_LIMITS.maxModelIdBytes) throw malformed('bad model id')
      return v as Frame
    case 'hello':
      if (keys !== 2 || !isBytes(v.enc, 64)) throw malformed('bad hello')
      return v as Frame
    case 'req':
    case 'pay':
    case 'tok':
    case 'end':
      if (keys !== 3 || !isId(v.id) || !isBytes(v.body, max)) throw malformed(`bad ${v.t}`)
      return v as Frame
    case 'cancel':
      if (keys !== 2 || !isId(v.id)) throw malformed('bad cancel')
      return v as Frame
    case 'err':
      if (
        keys !== 4 ||
        !isId(v.id) ||
        !(JOB_ERROR_CODES as readonly unknown[]).includes(v.code) ||
        typeof v.message !== 'string' ||
        v.message.length > MAX_ERROR_MESSAGE
      )
        throw malformed('bad err')
      return v as Frame
    default:
      throw malformed(`unknown frame type ${String(v.t).slice(0, 32)}`)
  }
}

/** Where a session's frames go: its length-prefixed stream. */
export interface FrameSink {
  writeV(frames: Uint8Array[]): Promise<void>
}

/**
 * Writes one session's frames in order, coalescing every frame queued within one turn of the event
 * loop into one write (one muxer frame, one noise message, one socket write instead of one of each
 * per frame). A frame is built, and so sealed, only when its batch goes out, in queue order: the
 * channel's counters follow the order on the wire. A write that fails fails every later one too,
 * and `onError` hears of it once.
 */
export class FrameWriter {
  private queue: Array<() => Uint8Array> = []
  private batch: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } | undefined
  /** The latest batch still waiting for the stream to drain. */
  private writing: Promise<void> | undefined
  private error: Error | undefined

  constructor(
    private readonly sink: FrameSink,
    private readonly onError: (err: Error) => void = () => {}
  ) {}

  /**
   * Queues a frame that `build` makes when its batch is written. Resolves once the stream took the
   * batch (after a drain if it was full), rejects if the write failed.
   */
  write(build: () => Uint8Array): Promise<void> {
    if (this.error !== undefined) return Promise.reject(this.error)
    this.queue.push(build)
    if (this.batch === undefined) {
      let resolve: () => void = () => {}
      let reject: (err: Error) => void = () => {}
      const promise = new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      })
      promise.catch(() => {}) // a frame's writer may not wait for it; the failure reaches onError
      this.batch = { promise, resolve, reject }
      setImmediate(() => this.flush())
    }
    return this.batch.promise
  }

  /** Undefined while more frames may be queued at once; else a promise that settles when the stream has drained (or failed). */
  ready(): Promise<void> | undefined {
    if (this.error !== undefined) return Promise.reject(this.error)
    return this.writing
  }

  private flush(): void {
    const { queue, batch } = this
    this.queue = []
    this.batch = undefined
    if (batch === undefined) return
    if (this.error !== undefined) {
      batch.reject(this.error)
      return
    }
    let written: Promise<void>
    try {
      written = this.sink.writeV(queue.map((build) => build()))
    } catch (err) {
      written = Promise.reject(err)
    }
    this.writing = written
    written.then(
      () => {
        if (this.writing === written) this.writing = undefined
        batch.resolve()
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err))
        if (this.error === undefined) {
          this.error = error
          this.onError(error)
        }
        batch.reject(error)
      }
    )
  }
}

/** Associated data of a sealed body: its frame's type and job id. */
export function frameAad(t: 'req' | 'tok' | 'end' | 'pay', id: number): Uint8Array {
  const aad = new Uint8Array(5)
  aad[0] = t === 'req' ? 1 : t === 'tok' ? 2 : t === 'end' ? 3 : 4
  new DataView(aad.buffer).setUint32(1, id)
  return aad
}

/** What the edge asks a host to run (the plaintext of a `req` body). */
export interface Job {
  /** Chosen by the edge; the host signs it into the receipt. */
  job: string
  model: string
  prompt?: string
  messages?: ChatMessage[]
  maxTokens: number
  temperature: number
  seed: number
  topK: number | null
  topP: number | null
  stop: string[]
  /** The payer's voucher to the host, for a model with a price (see src/payments). */
  voucher?: Uint8Array
}

export function jobFromRequest(jobId: string, request: NormalizedRequest): Job {
  const job: Job = { job: jobId, model: request.model, ...request.params }
  if (request.input.prompt !== undefined) job.prompt = request.input.prompt
  else job.messages = request.input.messages
  return job
}

/** The canonical bytes of a job: what the edge seals and what the receipt's `input` hashes. */
export function encodeJob(job: Job): Uint8Array {
  return dagCbor.encode(job)
}

/** The plaintext of an `end` body. */
export interface JobResult {
  finish: FinishReason
  stopSequence: string | null
  promptTokens: number
  completionTokens: number
  receipt: Uint8Array
}

export function encodeJobResult(result: JobResult): Uint8Array {
  return dagCbor.encode(result)
}

export function decodeJobResult(bytes: Uint8Array): JobResult {
  let v: JobResult
  try {
    v = dagCbor.decode(bytes)
  } catch (err) {
    throw malformed(`job result: ${(err as Error).message}`)
  }
  if (
    v == null ||
    typeof v !== 'object' ||
    !['stop', 'length', 'aborted'].includes(v.finish) ||
    !(v.stopSequence === null || typeof v.stopSequence === 'string') ||
    !Number.isInteger(v.promptTokens) ||
    !Number.isInteger(v.completionTokens) ||
    !(v.receipt instanceof Uint8Array)
  )
    throw malformed('bad job result')
  return v
}
