import { z } from 'zod'
import { INFERENCE_LIMITS } from '../params/index.ts'

/**
 * The protocol between an engine and a model worker process, over one pipe (the child's fd 3):
 * frames of a 4-byte big-endian length and that many bytes of UTF-8 JSON. Every frame has a
 * size limit and every message a schema, checked on arrival, both ways.
 */

export class FrameError extends Error {}

/** One frame holding `message` as JSON; throws if it would be over `maxBytes`. */
export function encodeFrame(message: unknown, maxBytes: number = INFERENCE_LIMITS.maxIpcFrameBytes): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8')
  if (body.byteLength > maxBytes) throw new FrameError(`message of ${body.byteLength} bytes is over the ${maxBytes}-byte frame limit`)
  const frame = Buffer.allocUnsafe(4 + body.byteLength)
  frame.writeUInt32BE(body.byteLength, 0)
  body.copy(frame, 4)
  return frame
}

/**
 * Cuts a byte stream into frames and parses each as JSON. A length over `maxBytes` throws
 * before any of the body is buffered, so a peer cannot make the reader hold more than that.
 */
export class FrameReader {
  private readonly maxBytes: number
  private buffered: Buffer[] = []
  private length = 0
  /** Body size of the frame being read, once its length prefix has arrived. */
  private expected: number | null = null

  constructor(maxBytes: number = INFERENCE_LIMITS.maxIpcFrameBytes) {
    this.maxBytes = maxBytes
  }

  push(chunk: Buffer): unknown[] {
    this.buffered.push(chunk)
    this.length += chunk.byteLength
    const out: unknown[] = []
    while (true) {
      if (this.expected == null) {
        if (this.length < 4) break
        const size = this.take(4).readUInt32BE(0)
        if (size > this.maxBytes) throw new FrameError(`frame of ${size} bytes is over the ${this.maxBytes}-byte limit`)
        this.expected = size
      }
      if (this.length < this.expected) break
      const body = this.take(this.expected)
      this.expected = null
      try {
        out.push(JSON.parse(body.toString('utf8')))
      } catch {
        throw new FrameError('frame is not JSON')
      }
    }
    return out
  }

  /** Removes and returns the first `n` buffered bytes (the caller checked they are there). */
  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? (this.buffered[0] as Buffer) : Buffer.concat(this.buffered)
    this.buffered = all.byteLength > n ? [all.subarray(n)] : []
    this.length -= n
    return all.subarray(0, n)
  }
}

const text = (max: number) => z.string().max(max)
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const requestId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)
const ChatMessageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant']),
  content: text(INFERENCE_LIMITS.maxPromptBytes)
})
const PromptInputSchema = z.union([
  z.object({ prompt: text(INFERENCE_LIMITS.maxPromptBytes) }),
  z.object({ messages: z.array(ChatMessageSchema).min(1).max(INFERENCE_LIMITS.maxChatMessages) })
])

export const LoadMessageSchema = z.object({
  t: z.literal('load'),
  path: text(4096),
  contextSize: z
    .number()
    .int()
    .min(16)
    .max(1 << 24),
  threads: z.number().int().min(1).max(1024),
  sequences: z.number().int().min(1).max(64),
  gpu: z.union([z.literal(false), z.literal('auto')])
})

/** Engine → worker. */
export const ToWorkerSchema = z.discriminatedUnion('t', [
  LoadMessageSchema,
  z.object({
    t: z.literal('generate'),
    id: requestId,
    input: PromptInputSchema,
    params: z.object({
      maxTokens: z.number().int().min(1).max(INFERENCE_LIMITS.maxGenerateTokens),
      temperature: z.number().min(0).max(INFERENCE_LIMITS.maxTemperature),
      seed: z.number().int().min(0).max(INFERENCE_LIMITS.maxSeed),
      topK: z.number().int().min(0).max(INFERENCE_LIMITS.maxTopK).nullable(),
      topP: z.number().gt(0).max(1).nullable(),
      stop: z.array(text(INFERENCE_LIMITS.maxStopSequenceBytes)).max(INFERENCE_LIMITS.maxStopSequences)
    })
  }),
  z.object({ t: z.literal('cancel'), id: requestId }),
  z.object({ t: z.literal('tokenize'), id: requestId, text: text(INFERENCE_LIMITS.maxPromptBytes) }),
  z.object({ t: z.literal('count'), id: requestId, input: PromptInputSchema }),
  z.object({ t: z.literal('close') })
])
export type ToWorker = z.infer<typeof ToWorkerSchema>

const maxPieceChars = 64 * 1024

/** Worker → engine. */
export const FromWorkerSchema = z.discriminatedUnion('t', [
  z.object({
    t: z.literal('loaded'),
    info: z.object({
      name: text(1024).nullable(),
      architecture: text(256).nullable(),
      contextSize: count,
      trainContextSize: count,
      vocabularySize: count,
      sizeBytes: count,
      chatTemplate: z.enum(['model', 'fallback'])
    })
  }),
  z.object({ t: z.literal('load-failed'), message: text(8192) }),
  z.object({ t: z.literal('started'), id: requestId, promptTokens: count }),
  z.object({ t: z.literal('piece'), id: requestId, text: text(maxPieceChars), completionTokens: count }),
  z.object({
    t: z.literal('done'),
    id: requestId,
    text: text(INFERENCE_LIMITS.maxGenerateTokens * 64),
    finishReason: z.enum(['stop', 'length', 'aborted']),
    stopSequence: text(INFERENCE_LIMITS.maxStopSequenceBytes).nullable(),
    promptTokens: count,
    completionTokens: count
  }),
  z.object({ t: z.literal('tokens'), id: requestId, tokens: z.array(count).max(INFERENCE_LIMITS.maxPromptBytes + 2) }),
  z.object({ t: z.literal('count'), id: requestId, tokens: count }),
  z.object({
    t: z.literal('error'),
    id: requestId,
    code: z.enum(['PROMPT_TOO_LONG', 'BUSY', 'INTERNAL']),
    message: text(8192)
  })
])
export type FromWorker = z.infer<typeof FromWorkerSchema>
