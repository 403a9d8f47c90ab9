import * as dagCbor from '@ipld/dag-cbor'
import {
  bytesLength,
  CborReader,
  CborWriter,
  encodedKey,
  headLength,
  MAJOR_ARRAY,
  MAJOR_MAP,
  textLength,
  uintLength,
  WireError
} from '../codec/wire.ts'
import { SEAL_OVERHEAD_BYTES } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { HOST_LIMITS, INFERENCE_LIMITS } from '../params/index.ts'
import type { ChatMessage, FinishReason, NormalizedRequest } from './engine.ts'
import { joinFrames, splitFrames, varintLength } from './frame-stream.ts'

/**
 * The frames of `/llmesh/infer/2.0.0` (see docs/protocols.md). One stream is one session
 * between an edge and a host, kept open and shared by many jobs. Two frames open it in the clear:
 *
 *   host → edge  info   { key, sig, models, owed }   once, first: the host's sealing key and its binding, and what the peer owes it
 *   edge → host  hello  { enc }                       once: opens the sealed session (HPKE)
 *
 * then every frame either way is a `box { body }`: sealed frames, each length-prefixed as on the
 * stream, all the frames one side writes at once in one box (one AEAD operation, whatever their
 * number). Inside the boxes:
 *
 *   edge → host  req    { id, body: job }      starts job `id`
 *   edge → host  cancel { id }                 stops job `id`
 *   edge → host  pay    { id, body: voucher }  a later voucher after job `id` (pays for it)
 *   host → edge  tok    { id, body: text }     a piece of the answer (UTF-8)
 *   host → edge  end    { id, body: result }   the job finished; the result carries the signed receipt
 *   host → edge  err    { id, code, message }  the job failed (codes: {@link JOB_ERROR_CODES})
 *
 * Frames are canonical DAG-CBOR maps of at most `HOST_LIMITS.maxFrameBytes`, a box included.
 * Boxes are opened in the order they travel (the nonce is a counter per direction). Anything else
 * ends the session: a frame other than a box after `hello`, a box that does not open, a box
 * holding anything but whole frames of its direction.
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
  | { t: 'box'; body: Uint8Array }

export class FrameError extends LlmeshError<'FRAME_TOO_LARGE' | 'FRAME_MALFORMED'> {}

const MAX_JOB_ID = 2 ** 32 - 1
const MAX_ERROR_MESSAGE = 512
const MAX_INFO_MODELS = HOST_LIMITS.maxAdvertModels

/** The hot frames, which carry a job id and (but `cancel`) a body, have their own encoder and decoder. */
const HOT_TYPES = ['req', 'pay', 'tok', 'end', 'cancel'] as const
type HotType = (typeof HOT_TYPES)[number]
/** Canonical key order of a frame map: `t`, `id`, `body` (shorter keys first). */
const K_T = encodedKey('t')
const K_ID = encodedKey('id')
const K_BODY = encodedKey('body')
const HOT_TYPE_TEXT = new Map<string, Uint8Array>(HOT_TYPES.map((t) => [t, encodedKey(t)]))
const MAP_HEAD_3 = (MAJOR_MAP << 5) | 3
const MAP_HEAD_2 = (MAJOR_MAP << 5) | 2

/** A frame's canonical DAG-CBOR (the hot frames written by hand, byte for byte what `@ipld/dag-cbor` gives). */
export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.t === 'box') return encodeBoxFrame(frame.body)
  const t = HOT_TYPE_TEXT.get(frame.t)
  if (t === undefined || !isId((frame as { id?: unknown }).id)) return dagCbor.encode(frame)
  const id = (frame as { id: number }).id
  const body = (frame as { body?: Uint8Array }).body
  const w = new CborWriter(
    1 + K_T.byteLength + t.byteLength + K_ID.byteLength + uintLength(id) + (body === undefined ? 0 : K_BODY.byteLength + bytesLength(body))
  )
  w.head(MAJOR_MAP, body === undefined ? 2 : 3)
  w.raw(K_T)
  w.raw(t)
  w.raw(K_ID)
  w.uint(id)
  if (body !== undefined) {
    w.raw(K_BODY)
    w.bytes(body)
  }
  return w.done()
}

/**
 * The canonical encoding of a hot frame, decoded without the generic decoder; undefined for
 * anything else (another frame type, or bytes off the canonical form), which the generic path
 * then decodes and checks exactly as before.
 */
function decodeHotFrame(bytes: Uint8Array): Frame | undefined {
  const head = bytes[0]
  if (head !== MAP_HEAD_3 && head !== MAP_HEAD_2) return undefined
  const r = new CborReader(bytes)
  r.pos = 1
  if (!r.tryKey(K_T)) return undefined
  let t: HotType | undefined
  for (const [name, text] of HOT_TYPE_TEXT) {
    if (r.tryKey(text)) {
      t = name as HotType
      break
    }
  }
  if (t === undefined || (t === 'cancel') !== (head === MAP_HEAD_2) || !r.tryKey(K_ID)) return undefined
  try {
    const id = r.uint(MAX_JOB_ID)
    if (t === 'cancel') return r.done ? { t, id } : undefined
    if (!r.tryKey(K_BODY)) return undefined
    const body = r.bytesView(HOST_LIMITS.maxFrameBytes)
    return r.done ? { t, id, body } : undefined
  } catch (err) {
    if (err instanceof WireError) return undefined
    throw err
  }
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
  const hot = decodeBoxFrame(bytes) ?? decodeHotFrame(bytes)
  if (hot !== undefined) return hot
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
    case 'box':
      if (keys !== 2 || !isBytes(v.body, max)) throw malformed('bad box')
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
 * per frame) and, once the session is sealed, one box. A frame is built only when its batch goes
 * out, in queue order, and the batch sealed then: the channel's counters follow the order on the
 * wire. A write that fails fails every later one too, and `onError` hears of it once.
 */
export class FrameWriter {
  private queue: Array<() => Uint8Array> = []
  private batch: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } | undefined
  /** The latest batch still waiting for the stream to drain. */
  private writing: Promise<void> | undefined
  private error: Error | undefined
  private seal: ((plain: Uint8Array) => Uint8Array) | undefined

  constructor(
    private readonly sink: FrameSink,
    private readonly onError: (err: Error) => void = () => {}
  ) {}

  /** From now on every batch goes out in boxes sealed by `seal` ({@link packBoxes}). */
  sealWith(seal: (plain: Uint8Array) => Uint8Array): void {
    this.seal = seal
  }

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
      const frames = queue.map((build) => build())
      written = this.sink.writeV(this.seal === undefined ? frames : packBoxes(frames, this.seal))
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

const K_BOX = encodedKey('box')
const BOX_HEAD = K_T.byteLength + K_BOX.byteLength + K_BODY.byteLength

/** `{t: 'box', body}`, written by hand (the bytes `@ipld/dag-cbor` gives). */
function encodeBoxFrame(body: Uint8Array): Uint8Array {
  const w = new CborWriter(1 + BOX_HEAD + bytesLength(body))
  w.head(MAJOR_MAP, 2)
  w.raw(K_T)
  w.raw(K_BOX)
  w.raw(K_BODY)
  w.bytes(body)
  return w.done()
}

/** The canonical encoding of a box, read without the generic decoder; undefined for anything else. */
function decodeBoxFrame(bytes: Uint8Array): Frame | undefined {
  if (bytes[0] !== MAP_HEAD_2) return undefined
  const r = new CborReader(bytes)
  r.pos = 1
  if (!r.tryKey(K_T) || !r.tryKey(K_BOX) || !r.tryKey(K_BODY)) return undefined
  try {
    const body = r.bytesView(HOST_LIMITS.maxFrameBytes)
    return r.done ? { t: 'box', body } : undefined
  } catch (err) {
    if (err instanceof WireError) return undefined
    throw err
  }
}

/** Associated data of every box: its type. (Its order on the stream is in the nonce.) */
export const BOX_AAD = Uint8Array.of(5)
/** What a box adds around its sealed frames, at most: the frame map, the byte string head, the tag. */
const BOX_OVERHEAD_BYTES = 1 + BOX_HEAD + 5 + SEAL_OVERHEAD_BYTES
/** The largest plaintext of a box: its frames with their length prefixes. */
export const MAX_BOX_PLAIN_BYTES = HOST_LIMITS.maxFrameBytes - BOX_OVERHEAD_BYTES

/**
 * `frames` in as few boxes as the size limit allows, in order; `seal` seals one box's plaintext
 * (the session's next nonce). A frame too large for a box of its own is refused (FRAME_TOO_LARGE):
 * the limits on jobs and pieces keep every frame far below it.
 */
export function packBoxes(frames: Uint8Array[], seal: (plain: Uint8Array) => Uint8Array): Uint8Array[] {
  const boxes: Uint8Array[] = []
  let start = 0
  let size = 0
  for (let i = 0; i < frames.length; i++) {
    const bytes = (frames[i] as Uint8Array).byteLength
    const n = varintLength(bytes) + bytes
    if (n > MAX_BOX_PLAIN_BYTES) throw new FrameError('FRAME_TOO_LARGE', `a frame of ${bytes} bytes does not fit in a box`)
    if (size + n > MAX_BOX_PLAIN_BYTES) {
      boxes.push(encodeBoxFrame(seal(joinFrames(frames.slice(start, i)))))
      start = i
      size = 0
    }
    size += n
  }
  if (start < frames.length) boxes.push(encodeBoxFrame(seal(joinFrames(start === 0 ? frames : frames.slice(start)))))
  return boxes
}

/**
 * The frames of an opened box, each decoded and checked; throws {@link FrameError} unless the box
 * holds one or more whole frames of the types `allowed` (the other side's).
 */
export function unpackBox(plain: Uint8Array, allowed: ReadonlySet<Frame['t']>): Frame[] {
  let parts: Uint8Array[]
  try {
    parts = splitFrames(plain, HOST_LIMITS.maxFrameBytes)
  } catch (err) {
    throw malformed(`a box: ${(err as Error).message}`)
  }
  if (parts.length === 0) throw malformed('an empty box')
  return parts.map((bytes) => {
    const frame = decodeFrame(bytes)
    if (!allowed.has(frame.t)) throw malformed(`a ${frame.t} frame in a box`)
    return frame
  })
}

/** What an edge may put in a box, and what a host may. */
export const EDGE_BOXED: ReadonlySet<Frame['t']> = new Set(['req', 'cancel', 'pay'])
export const HOST_BOXED: ReadonlySet<Frame['t']> = new Set(['tok', 'end', 'err'])

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

/** Keys of a job in canonical order (shorter first, then bytewise). */
const JOB_KEYS = ['job', 'seed', 'stop', 'topK', 'topP', 'model', 'prompt', 'voucher', 'messages', 'maxTokens', 'temperature'] as const
const K_JOB = Object.fromEntries(JOB_KEYS.map((k) => [k, encodedKey(k)])) as Record<(typeof JOB_KEYS)[number], Uint8Array>
const K_ROLE = encodedKey('role')
const K_CONTENT = encodedKey('content')
const FLOAT64_HEAD = 0xfb
const NEGATIVE_ZERO_OR_UNSAFE = (n: number): boolean =>
  Object.is(n, -0) || !Number.isFinite(n) || (Number.isInteger(n) && !Number.isSafeInteger(n))

/** True if the hand-written encoder writes `n` as `@ipld/dag-cbor` does: an unsigned integer or a finite non-integer (float64). */
const plainNumber = (n: unknown): n is number => typeof n === 'number' && !NEGATIVE_ZERO_OR_UNSAFE(n) && (n >= 0 || !Number.isInteger(n))
const numberLength = (n: number): number => (Number.isInteger(n) ? uintLength(n) : 9)

function writeNumber(w: CborWriter, n: number): void {
  if (Number.isInteger(n)) {
    w.uint(n)
    return
  }
  w.buf[w.pos++] = FLOAT64_HEAD
  w.buf.writeDoubleBE(n, w.pos)
  w.pos += 8
}

/** The canonical bytes of a job: what the edge seals and what the receipt's `input` hashes. */
export function encodeJob(job: Job): Uint8Array {
  return encodeJobFast(job) ?? dagCbor.encode(job)
}

/**
 * A job's canonical DAG-CBOR written by hand, for the shape `jobFromRequest` makes (byte for byte
 * what `@ipld/dag-cbor` gives, as a property test checks); undefined for anything else.
 */
function encodeJobFast(job: Job): Uint8Array | undefined {
  const { prompt, messages, voucher, topK, topP } = job
  let keys = 0
  for (const k in job) if ((job as unknown as Record<string, unknown>)[k] !== undefined) keys++
  const expected = 8 + (prompt !== undefined ? 1 : 0) + (messages !== undefined ? 1 : 0) + (voucher !== undefined ? 1 : 0)
  if (
    keys !== expected ||
    typeof job.job !== 'string' ||
    typeof job.model !== 'string' ||
    !plainNumber(job.seed) ||
    !plainNumber(job.maxTokens) ||
    !plainNumber(job.temperature) ||
    !(topK === null || plainNumber(topK)) ||
    !(topP === null || plainNumber(topP)) ||
    !Array.isArray(job.stop) ||
    !job.stop.every((s) => typeof s === 'string') ||
    !(prompt === undefined || typeof prompt === 'string') ||
    !(voucher === undefined || voucher instanceof Uint8Array) ||
    !(
      messages === undefined ||
      (Array.isArray(messages) &&
        messages.every((m) => m != null && typeof m.role === 'string' && typeof m.content === 'string' && Object.keys(m).length === 2))
    )
  ) {
    return undefined
  }
  let size = 1
  size += K_JOB.job.byteLength + textLength(job.job)
  size += K_JOB.seed.byteLength + numberLength(job.seed)
  size += K_JOB.stop.byteLength + headLength(job.stop.length)
  for (const s of job.stop) size += textLength(s)
  size += K_JOB.topK.byteLength + (topK === null ? 1 : numberLength(topK))
  size += K_JOB.topP.byteLength + (topP === null ? 1 : numberLength(topP))
  size += K_JOB.model.byteLength + textLength(job.model)
  if (prompt !== undefined) size += K_JOB.prompt.byteLength + textLength(prompt)
  if (voucher !== undefined) size += K_JOB.voucher.byteLength + bytesLength(voucher)
  if (messages !== undefined) {
    size += K_JOB.messages.byteLength + headLength(messages.length)
    for (const m of messages) size += 1 + K_ROLE.byteLength + textLength(m.role) + K_CONTENT.byteLength + textLength(m.content)
  }
  size += K_JOB.maxTokens.byteLength + numberLength(job.maxTokens)
  size += K_JOB.temperature.byteLength + numberLength(job.temperature)
  const w = new CborWriter(size)
  w.head(MAJOR_MAP, expected)
  w.raw(K_JOB.job)
  w.text(job.job)
  w.raw(K_JOB.seed)
  writeNumber(w, job.seed)
  w.raw(K_JOB.stop)
  w.head(MAJOR_ARRAY, job.stop.length)
  for (const s of job.stop) w.text(s)
  w.raw(K_JOB.topK)
  if (topK === null) w.null()
  else writeNumber(w, topK)
  w.raw(K_JOB.topP)
  if (topP === null) w.null()
  else writeNumber(w, topP)
  w.raw(K_JOB.model)
  w.text(job.model)
  if (prompt !== undefined) {
    w.raw(K_JOB.prompt)
    w.text(prompt)
  }
  if (voucher !== undefined) {
    w.raw(K_JOB.voucher)
    w.bytes(voucher)
  }
  if (messages !== undefined) {
    w.raw(K_JOB.messages)
    w.head(MAJOR_ARRAY, messages.length)
    for (const m of messages) {
      w.head(MAJOR_MAP, 2)
      w.raw(K_ROLE)
      w.text(m.role)
      w.raw(K_CONTENT)
      w.text(m.content)
    }
  }
  w.raw(K_JOB.maxTokens)
  writeNumber(w, job.maxTokens)
  w.raw(K_JOB.temperature)
  writeNumber(w, job.temperature)
  return w.done()
}

/**
 * Decodes a job's plaintext as the generic DAG-CBOR decoder would (throwing for what it refuses);
 * the canonical encoding of the usual shape is read by hand, anything else by `@ipld/dag-cbor`.
 * The caller checks the fields.
 */
export function decodeJob(bytes: Uint8Array): unknown {
  return decodeJobFast(bytes) ?? dagCbor.decode(bytes)
}

function readNumber(r: CborReader): number {
  if (r.bytes[r.pos] === FLOAT64_HEAD) {
    if (r.pos + 9 > r.bytes.byteLength) r.fail('truncated')
    const n = Buffer.from(r.bytes.buffer, r.bytes.byteOffset + r.pos + 1, 8).readDoubleBE(0)
    // the generic decoder decides on floats that are integers, NaN or infinite
    if (!Number.isFinite(n) || Number.isInteger(n)) r.fail('not a plain float')
    r.pos += 9
    return n
  }
  return r.uint(Number.MAX_SAFE_INTEGER)
}

function decodeJobFast(bytes: Uint8Array): Record<string, unknown> | undefined {
  const head = bytes[0] ?? 0
  if (head >> 5 !== MAJOR_MAP) return undefined
  const r = new CborReader(bytes)
  try {
    const keys = r.head(MAJOR_MAP)
    if (keys < 9 || keys > 11) return undefined
    const job: Record<string, unknown> = {}
    r.key(K_JOB.job)
    job.job = r.text(HOST_LIMITS.maxFrameBytes)
    r.key(K_JOB.seed)
    job.seed = readNumber(r)
    r.key(K_JOB.stop)
    const stops = r.head(MAJOR_ARRAY)
    if (stops > INFERENCE_LIMITS.maxStopSequences) return undefined
    const stop: string[] = []
    for (let i = 0; i < stops; i++) stop.push(r.text(HOST_LIMITS.maxFrameBytes))
    job.stop = stop
    r.key(K_JOB.topK)
    job.topK = r.nullable() ? null : readNumber(r)
    r.key(K_JOB.topP)
    job.topP = r.nullable() ? null : readNumber(r)
    r.key(K_JOB.model)
    job.model = r.text(HOST_LIMITS.maxFrameBytes)
    let found = 6
    if (r.tryKey(K_JOB.prompt)) {
      job.prompt = r.text(HOST_LIMITS.maxFrameBytes)
      found++
    }
    if (r.tryKey(K_JOB.voucher)) {
      job.voucher = r.bytesView(HOST_LIMITS.maxFrameBytes).slice()
      found++
    }
    if (r.tryKey(K_JOB.messages)) {
      const count = r.head(MAJOR_ARRAY)
      if (count > INFERENCE_LIMITS.maxChatMessages) return undefined
      const messages: ChatMessage[] = []
      for (let i = 0; i < count; i++) {
        if (r.head(MAJOR_MAP) !== 2) return undefined
        r.key(K_ROLE)
        const role = r.text(16)
        r.key(K_CONTENT)
        messages.push({ role: role as ChatMessage['role'], content: r.text(HOST_LIMITS.maxFrameBytes) })
      }
      job.messages = messages
      found++
    }
    r.key(K_JOB.maxTokens)
    job.maxTokens = readNumber(r)
    r.key(K_JOB.temperature)
    job.temperature = readNumber(r)
    if (found + 2 !== keys || !r.done) return undefined
    return job
  } catch (err) {
    if (err instanceof WireError) return undefined
    throw err
  }
}

/** The plaintext of an `end` body. */
export interface JobResult {
  finish: FinishReason
  stopSequence: string | null
  promptTokens: number
  completionTokens: number
  receipt: Uint8Array
}

/** Canonical key order of a job result. */
const K_FINISH = encodedKey('finish')
const K_RECEIPT = encodedKey('receipt')
const K_PROMPT_TOKENS = encodedKey('promptTokens')
const K_STOP_SEQUENCE = encodedKey('stopSequence')
const K_COMPLETION_TOKENS = encodedKey('completionTokens')
const MAX_STOP_SEQUENCE_BYTES = HOST_LIMITS.maxFrameBytes

/** A job result's canonical DAG-CBOR, written by hand (byte for byte what `@ipld/dag-cbor` gives). */
export function encodeJobResult(result: JobResult): Uint8Array {
  const { finish, stopSequence, promptTokens, completionTokens, receipt } = result
  if (!Number.isSafeInteger(promptTokens) || promptTokens < 0 || !Number.isSafeInteger(completionTokens) || completionTokens < 0) {
    return dagCbor.encode(result)
  }
  const w = new CborWriter(
    1 +
      K_FINISH.byteLength +
      textLength(finish) +
      K_RECEIPT.byteLength +
      bytesLength(receipt) +
      K_PROMPT_TOKENS.byteLength +
      uintLength(promptTokens) +
      K_STOP_SEQUENCE.byteLength +
      (stopSequence === null ? 1 : textLength(stopSequence)) +
      K_COMPLETION_TOKENS.byteLength +
      uintLength(completionTokens)
  )
  w.head(MAJOR_MAP, 5)
  w.raw(K_FINISH)
  w.text(finish)
  w.raw(K_RECEIPT)
  w.bytes(receipt)
  w.raw(K_PROMPT_TOKENS)
  w.uint(promptTokens)
  w.raw(K_STOP_SEQUENCE)
  if (stopSequence === null) w.null()
  else w.text(stopSequence)
  w.raw(K_COMPLETION_TOKENS)
  w.uint(completionTokens)
  return w.done()
}

/** The canonical encoding of a job result, decoded by hand; undefined for anything else (the generic path decides). */
function decodeJobResultFast(bytes: Uint8Array): JobResult | undefined {
  if (bytes[0] !== ((MAJOR_MAP << 5) | 5)) return undefined
  const r = new CborReader(bytes)
  r.pos = 1
  try {
    if (!r.tryKey(K_FINISH)) return undefined
    const finish = r.text(16)
    if (finish !== 'stop' && finish !== 'length' && finish !== 'aborted') return undefined
    if (!r.tryKey(K_RECEIPT)) return undefined
    const receipt = r.bytesView(HOST_LIMITS.maxFrameBytes)
    if (!r.tryKey(K_PROMPT_TOKENS)) return undefined
    const promptTokens = r.uint(Number.MAX_SAFE_INTEGER)
    if (!r.tryKey(K_STOP_SEQUENCE)) return undefined
    const stopSequence = r.nullable() ? null : r.text(MAX_STOP_SEQUENCE_BYTES)
    if (!r.tryKey(K_COMPLETION_TOKENS)) return undefined
    const completionTokens = r.uint(Number.MAX_SAFE_INTEGER)
    if (!r.done) return undefined
    return { finish, stopSequence, promptTokens, completionTokens, receipt }
  } catch (err) {
    if (err instanceof WireError) return undefined
    throw err
  }
}

export function decodeJobResult(bytes: Uint8Array): JobResult {
  const fast = decodeJobResultFast(bytes)
  if (fast !== undefined) return fast
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
