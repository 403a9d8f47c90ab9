import type { Stream } from '@libp2p/interface'
import { LlmeshError } from '../errors/index.ts'

/**
 * Length-prefixed frames on a libp2p stream (an unsigned varint length, then the frame: the wire
 * format of `lpStream` from `@libp2p/utils`), read without a promise per frame: every frame that
 * arrives in one chunk of the stream is handed on in the same call, and a session's frames written
 * together go out in one `send`. `lpStream` reads a frame with two or more awaited reads (the length
 * byte by byte, throwing a RangeError for each incomplete one): on a busy session that was several
 * times the cost of the frames' own handling.
 *
 * Bounds: a frame longer than `maxFrameBytes` (or a length prefix longer than needed to say it) is
 * refused before its body is buffered; the bytes held are at most one frame and its prefix, plus,
 * before a handler is set, at most `maxBacklogBytes` of whole frames.
 */

export type FrameStreamErrorCode = 'FRAME_TOO_LARGE' | 'FRAME_TRUNCATED' | 'FRAME_BACKLOG_FULL' | 'FRAME_STREAM_ENDED'

export class FrameStreamError extends LlmeshError<FrameStreamErrorCode> {}

export interface FrameStreamInit {
  maxFrameBytes: number
  /** Whole frames kept while nobody reads them (before `listen`), bytes; default 4 MiB. */
  maxBacklogBytes?: number
}

/** What a stream's `message` event carries: bytes, or a list of chunks (a `Uint8ArrayList`). */
type StreamData = Uint8Array | Iterable<Uint8Array>

const DEFAULT_BACKLOG_BYTES = 4 * 1024 * 1024
const RESOLVED = Promise.resolve()

export function varintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    len++
  }
  return len
}

/** `frames` as the stream carries them: each with its unsigned-varint length prefix, back to back. */
export function joinFrames(frames: Uint8Array[]): Buffer {
  let size = 0
  for (const f of frames) size += varintLength(f.byteLength) + f.byteLength
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  for (const f of frames) {
    let n = f.byteLength
    while (n >= 0x80) {
      out[pos++] = (n & 0x7f) | 0x80
      n = Math.floor(n / 0x80)
    }
    out[pos++] = n
    out.set(f, pos)
    pos += f.byteLength
  }
  return out
}

/**
 * The frames of `bytes` that {@link joinFrames} made (views into it); throws {@link FrameStreamError}
 * `FRAME_TOO_LARGE` for a frame over `maxFrameBytes`, and `FRAME_TRUNCATED` unless the bytes end
 * exactly where a frame does.
 */
export function splitFrames(bytes: Uint8Array, maxFrameBytes: number): Uint8Array[] {
  const frames: Uint8Array[] = []
  const maxLengthBytes = varintLength(maxFrameBytes)
  let pos = 0
  while (pos < bytes.byteLength) {
    const prefix = readLengthPrefix(bytes, pos, maxLengthBytes, maxFrameBytes)
    if (prefix === undefined) throw new FrameStreamError('FRAME_TRUNCATED', 'the bytes end inside a length prefix')
    const [length, start] = prefix
    if (bytes.byteLength - start < length) throw new FrameStreamError('FRAME_TRUNCATED', 'the bytes end inside a frame')
    frames.push(bytes.subarray(start, start + length))
    pos = start + length
  }
  return frames
}

/**
 * The unsigned-varint length prefix at `pos`: the length and where its frame starts, or undefined
 * if the bytes end inside the prefix. Throws FRAME_TOO_LARGE for a prefix longer than
 * `maxLengthBytes` or a length over `maxFrameBytes`.
 */
function readLengthPrefix(bytes: Uint8Array, pos: number, maxLengthBytes: number, maxFrameBytes: number): [number, number] | undefined {
  let length = 0
  let scale = 1
  let i = pos
  for (;;) {
    if (i >= bytes.byteLength) return undefined
    const b = bytes[i++] as number
    length += (b & 0x7f) * scale
    scale *= 0x80
    if (b < 0x80) break
    if (i - pos >= maxLengthBytes) throw new FrameStreamError('FRAME_TOO_LARGE', `a frame length prefix is over ${maxLengthBytes} bytes`)
  }
  if (length > maxFrameBytes)
    throw new FrameStreamError('FRAME_TOO_LARGE', `frame of ${length} bytes is over the ${maxFrameBytes}-byte limit`)
  return [length, i]
}

/**
 * One end of a stream of frames: `read()` takes frames one by one (a session's handshake), then
 * `listen(onFrame)` has every later frame handed to `onFrame` as soon as it has arrived whole.
 */
export class FrameStream {
  private readonly stream: Stream
  private readonly maxFrameBytes: number
  private readonly maxLengthBytes: number
  private readonly maxBacklogBytes: number
  /** Bytes of an incomplete frame (or length prefix) waiting for the rest. */
  private partial: Uint8Array | undefined
  /** Whole frames nobody took yet (before `listen`). */
  private backlog: Uint8Array[] = []
  private backlogBytes = 0
  private onFrame: ((frame: Uint8Array) => void) | undefined
  private waiter: { resolve: (frame: Uint8Array) => void; reject: (err: Error) => void } | undefined
  /** Set once no frame will come any more: the error `read` and `onEnd` report. */
  private ended: Error | undefined
  private onEnd: ((err: Error) => void) | undefined
  private readonly onMessage = (evt: Event): void => this.receive((evt as Event & { data: StreamData }).data)
  private readonly onClose = (evt: Event): void => {
    const error = (evt as Event & { error?: Error }).error
    this.end(error ?? new FrameStreamError('FRAME_STREAM_ENDED', 'the stream closed'))
  }
  /** 'end': the remote closed its end and every byte it sent was delivered (unlike 'remoteCloseWrite', which may come first). */
  private readonly onReadEnd = (): void => {
    this.end(new FrameStreamError('FRAME_STREAM_ENDED', 'the remote end closed the stream'))
  }

  constructor(stream: Stream, init: FrameStreamInit) {
    this.stream = stream
    this.maxFrameBytes = init.maxFrameBytes
    this.maxLengthBytes = varintLength(init.maxFrameBytes)
    this.maxBacklogBytes = init.maxBacklogBytes ?? DEFAULT_BACKLOG_BYTES
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('close', this.onClose)
    stream.addEventListener('end', this.onReadEnd)
  }

  /** The next frame; rejects when the stream ends or fails, or `signal` aborts. Only before `listen`. */
  read(signal?: AbortSignal): Promise<Uint8Array> {
    if (this.onFrame !== undefined || this.waiter !== undefined) return Promise.reject(new Error('frames are already being read'))
    const next = this.backlog.shift()
    if (next !== undefined) {
      this.backlogBytes -= next.byteLength
      return Promise.resolve(next)
    }
    if (this.ended !== undefined) return Promise.reject(this.ended)
    if (signal?.aborted === true) return Promise.reject(signal.reason)
    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiter = undefined
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiter = {
        resolve: (frame) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(frame)
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        }
      }
    })
  }

  /**
   * Hands every frame, those waiting first, to `onFrame` as it arrives; `onEnd` hears once why
   * no more will come (the stream ended or failed, a frame broke a bound, or `onFrame` threw).
   */
  listen(onFrame: (frame: Uint8Array) => void, onEnd: (err: Error) => void): void {
    if (this.onFrame !== undefined || this.waiter !== undefined) throw new Error('frames are already being read')
    this.onFrame = onFrame
    this.onEnd = onEnd
    const backlog = this.backlog
    this.backlog = []
    this.backlogBytes = 0
    try {
      for (const frame of backlog) onFrame(frame)
    } catch (err) {
      this.end(err instanceof Error ? err : new Error(String(err)))
      return
    }
    if (this.ended !== undefined) onEnd(this.ended)
  }

  /** Writes `frames`, each with its length prefix, in one `send`; resolves at once unless the stream must drain first. */
  writeV(frames: Uint8Array[]): Promise<void> {
    if (this.stream.send(joinFrames(frames))) return RESOLVED
    return new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.stream.removeEventListener('close', onClosed)
        resolve()
      }
      const onClosed = (evt: Event): void => {
        this.stream.removeEventListener('drain', onDrain)
        reject(
          (evt as Event & { error?: Error }).error ?? new FrameStreamError('FRAME_STREAM_ENDED', 'the stream closed before it drained')
        )
      }
      this.stream.addEventListener('drain', onDrain, { once: true })
      this.stream.addEventListener('close', onClosed, { once: true })
    })
  }

  write(frame: Uint8Array): Promise<void> {
    return this.writeV([frame])
  }

  private end(err: Error): void {
    if (this.ended !== undefined) return
    this.ended = err
    this.partial = undefined
    this.stream.removeEventListener('message', this.onMessage)
    this.stream.removeEventListener('close', this.onClose)
    this.stream.removeEventListener('end', this.onReadEnd)
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(err)
    this.onEnd?.(err)
  }

  private receive(data: StreamData): void {
    if (this.ended !== undefined) return
    try {
      if (data instanceof Uint8Array) this.parse(data)
      else for (const chunk of data) this.parse(chunk)
    } catch (err) {
      this.end(err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** Cuts the frames out of `chunk` (after any partial frame before it) and hands them on. */
  private parse(chunk: Uint8Array): void {
    let bytes = chunk
    if (this.partial !== undefined) {
      const joined = new Uint8Array(this.partial.byteLength + chunk.byteLength)
      joined.set(this.partial)
      joined.set(chunk, this.partial.byteLength)
      bytes = joined
      this.partial = undefined
    }
    let pos = 0
    const end = bytes.byteLength
    while (pos < end && this.ended === undefined) {
      const prefix = readLengthPrefix(bytes, pos, this.maxLengthBytes, this.maxFrameBytes)
      if (prefix === undefined) break
      const [length, start] = prefix
      if (end - start < length) break
      this.deliver(bytes.subarray(start, start + length))
      pos = start + length
    }
    // the rest is one incomplete frame at most (its size was checked): keep a copy, the chunk is not ours
    if (pos < end && this.ended === undefined) this.partial = bytes.slice(pos)
  }

  private deliver(frame: Uint8Array): void {
    if (this.onFrame !== undefined) {
      this.onFrame(frame)
      return
    }
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter.resolve(frame)
      return
    }
    if (this.backlogBytes + frame.byteLength > this.maxBacklogBytes) {
      throw new FrameStreamError('FRAME_BACKLOG_FULL', `over ${this.maxBacklogBytes} bytes of frames arrived before the session was open`)
    }
    this.backlog.push(frame)
    this.backlogBytes += frame.byteLength
  }
}
