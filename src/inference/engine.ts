import { z } from 'zod'
import { INFERENCE_DEFAULTS, INFERENCE_LIMITS } from '../params/index.ts'
import { InferenceInputError } from './errors.ts'

/**
 * The interface every inference engine implements (llama.cpp, echo), and the checks every
 * request passes before an engine sees it, so all engines refuse the same things the same way.
 */

/** A model to load: `id` is opaque to the engine (the model's CID); `path` is a local GGUF file. */
export interface ModelSpec {
  id: string
  path: string
}

export interface ModelInfo {
  id: string
  path: string
  /** `general.name` from the file, if any. */
  name: string | null
  architecture: string | null
  /** Context window of each sequence (the engine's setting, capped by the model's training context). */
  contextSize: number
  trainContextSize: number
  vocabularySize: number
  sizeBytes: number
  /** `model`: chat requests use the template stored in the file; `fallback`: {@link renderChatFallback}. */
  chatTemplate: 'model' | 'fallback'
  /** From the load call to a model ready for requests (worker start included). */
  loadMs: number
}

export type ChatRole = 'system' | 'user' | 'assistant'

export interface ChatMessage {
  role: ChatRole
  content: string
}

/** A plain completion prompt, or chat messages that the engine turns into a prompt. */
export type PromptInput = { prompt: string; messages?: undefined } | { messages: ChatMessage[]; prompt?: undefined }

export interface SamplingParams {
  /** Most tokens to generate (1 to `INFERENCE_LIMITS.maxGenerateTokens`). */
  maxTokens: number
  /** 0 (the default) picks the most likely token every time (greedy); up to 2. */
  temperature?: number
  /** Sampling seed (unsigned 32-bit); `INFERENCE_DEFAULTS.seed` when absent, so any output can be replayed. */
  seed?: number
  /** Sample only among the K most likely tokens (0 or absent: all). Only with temperature > 0. */
  topK?: number
  /** Sample only among the most likely tokens whose probabilities add up to P (absent: 1). Only with temperature > 0. */
  topP?: number
  /** Generation stops before the first of these; the stop text is not returned. */
  stop?: string[]
}

export type GenerateRequest = PromptInput & SamplingParams & { model: string }

/** `stop`: the model ended or a stop sequence matched; `length`: maxTokens or the context ran out; `aborted`: the caller cancelled. */
export type FinishReason = 'stop' | 'length' | 'aborted'

export interface GenerationResult {
  text: string
  finishReason: FinishReason
  /** The stop sequence of the request that ended the generation, if one did. */
  stopSequence: string | null
  /** Tokens the model read (beginning-of-sequence token included). */
  promptTokens: number
  /** Tokens the model generated, including any that formed a stop sequence. */
  completionTokens: number
  /** The seed the sampler used. */
  seed: number
  timeToFirstTokenMs: number | null
  durationMs: number
}

/**
 * A running generation: iterate it for text pieces as they come (one consumer; leaving the loop
 * early cancels the generation), and await `result` for the whole text and token counts. The
 * pieces always add up to `result.text`.
 */
export interface Generation extends AsyncIterable<string> {
  readonly result: Promise<GenerationResult>
  /**
   * Instead of iterating piece by piece: each step gives every piece that is ready (one or more),
   * so a consumer that writes pieces out together (a host) pays one step per batch. Use one or
   * the other, once.
   */
  batches(): AsyncIterable<string[]>
}

export interface GenerateOptions {
  /** Aborting stops the generation promptly; it then ends with finishReason `aborted`. */
  signal?: AbortSignal
}

/**
 * An inference engine. `generate` throws at once for a request it refuses (bad parameters, an
 * oversized prompt, an unknown model, a full queue); failures after that come through the
 * generation (its iterator throws and `result` rejects).
 */
export interface InferenceEngine {
  readonly kind: string
  start(): Promise<void>
  stop(): Promise<void>
  load(spec: ModelSpec): Promise<ModelInfo>
  unload(modelId: string): Promise<void>
  models(): ModelInfo[]
  /** The tokens `text` becomes as a completion prompt (beginning-of-sequence token included). */
  tokenize(modelId: string, text: string): Promise<number[]>
  /** How many tokens the model reads for this input: the prompt tokens a generation would report. */
  countTokens(modelId: string, input: PromptInput): Promise<number>
  generate(request: GenerateRequest, options?: GenerateOptions): Generation
}

/** A request after checking, with defaults filled in. */
export interface NormalizedRequest {
  model: string
  input: PromptInput
  params: Required<Pick<SamplingParams, 'maxTokens' | 'temperature' | 'seed'>> & {
    topK: number | null
    topP: number | null
    stop: string[]
  }
}

const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8')

const ModelIdSchema = z
  .string()
  .min(1)
  .max(INFERENCE_LIMITS.maxModelIdBytes)
  .refine((s) => utf8Bytes(s) <= INFERENCE_LIMITS.maxModelIdBytes, { message: 'model id is too long' })

const ParamsSchema = z.object({
  maxTokens: z.number().int().min(1).max(INFERENCE_LIMITS.maxGenerateTokens),
  temperature: z.number().min(0).max(INFERENCE_LIMITS.maxTemperature).default(0),
  seed: z.number().int().min(0).max(INFERENCE_LIMITS.maxSeed).default(INFERENCE_DEFAULTS.seed),
  topK: z.number().int().min(0).max(INFERENCE_LIMITS.maxTopK).nullable().default(null),
  topP: z.number().gt(0).max(1).nullable().default(null),
  stop: z
    .array(
      z
        .string()
        .min(1)
        .max(INFERENCE_LIMITS.maxStopSequenceBytes)
        .refine((s) => utf8Bytes(s) <= INFERENCE_LIMITS.maxStopSequenceBytes, {
          message: `a stop sequence is over ${INFERENCE_LIMITS.maxStopSequenceBytes} bytes`
        })
    )
    .max(INFERENCE_LIMITS.maxStopSequences)
    .default([])
})

const MessageSchema = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() })

function invalid(what: string, err: z.ZodError): InferenceInputError {
  const issues = err.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'value'}: ${i.message}`).join('; ')
  return new InferenceInputError('INVALID_PARAMS', `invalid ${what}: ${issues}`, { hint: 'fix the request and send it again' })
}

function tooLarge(what: string): InferenceInputError {
  return new InferenceInputError('PROMPT_TOO_LARGE', what, {
    hint: `shorten the prompt (at most ${INFERENCE_LIMITS.maxPromptBytes} bytes and ${INFERENCE_LIMITS.maxChatMessages} messages)`
  })
}

/** Checks a prompt or chat input against the size limits; returns it as a fresh plain object. */
export function normalizePromptInput(input: unknown): PromptInput {
  if (input == null || typeof input !== 'object') {
    throw new InferenceInputError('INVALID_PARAMS', 'a request must be an object', { hint: 'send { prompt } or { messages }' })
  }
  const { prompt, messages } = input as { prompt?: unknown; messages?: unknown }
  if ((prompt === undefined) === (messages === undefined)) {
    throw new InferenceInputError('INVALID_PARAMS', 'a request needs exactly one of `prompt` and `messages`', {
      hint: 'send a prompt string for a completion, or a messages array for a chat'
    })
  }
  if (prompt !== undefined) {
    if (typeof prompt !== 'string') throw new InferenceInputError('INVALID_PARAMS', '`prompt` must be a string', { hint: 'send text' })
    // length in UTF-16 units bounds the bytes from below: a cheap first check before counting
    if (prompt.length > INFERENCE_LIMITS.maxPromptBytes || utf8Bytes(prompt) > INFERENCE_LIMITS.maxPromptBytes) {
      throw tooLarge(`prompt of ${utf8Bytes(prompt)} bytes is over the ${INFERENCE_LIMITS.maxPromptBytes}-byte limit`)
    }
    return { prompt }
  }
  if (!Array.isArray(messages))
    throw new InferenceInputError('INVALID_PARAMS', '`messages` must be an array', { hint: 'send [{ role, content }]' })
  if (messages.length === 0) throw new InferenceInputError('INVALID_PARAMS', '`messages` is empty', { hint: 'send at least one message' })
  if (messages.length > INFERENCE_LIMITS.maxChatMessages) {
    throw tooLarge(`${messages.length} messages are over the limit of ${INFERENCE_LIMITS.maxChatMessages}`)
  }
  const out: ChatMessage[] = []
  let bytes = 0
  for (const [i, m] of messages.entries()) {
    const parsed = MessageSchema.safeParse(m)
    if (!parsed.success) throw invalid(`message ${i}`, parsed.error)
    bytes += parsed.data.content.length > INFERENCE_LIMITS.maxPromptBytes ? parsed.data.content.length : utf8Bytes(parsed.data.content)
    if (bytes > INFERENCE_LIMITS.maxPromptBytes) throw tooLarge(`messages are over the ${INFERENCE_LIMITS.maxPromptBytes}-byte limit`)
    out.push(parsed.data)
  }
  return { messages: out }
}

/** Checks a request (model id, input, sampling parameters) and fills in the defaults. */
export function normalizeGenerateRequest(request: GenerateRequest): NormalizedRequest {
  // every job is checked at the edge, at the host and in its engine: a valid request (nearly all of
  // them) takes the plain checks of isModelId and validParams; zod runs to word what is wrong with the others
  let model = request?.model
  if (!isModelId(model)) {
    const parsed = ModelIdSchema.safeParse(model)
    if (!parsed.success) throw invalid('model id', parsed.error)
    model = parsed.data
  }
  const input = normalizePromptInput(request)
  const valid = validParams(request)
  if (valid !== undefined) return { model, input, params: valid }
  const params = parseParams(request)
  if (!params.success) throw invalid('sampling parameters', params.error)
  return { model, input, params: params.data }
}

function parseParams(r: SamplingParams) {
  const { maxTokens, temperature, seed, topK, topP, stop } = r
  return ParamsSchema.safeParse({ maxTokens, temperature, seed, topK, topP, stop })
}

const isInt = (x: unknown, min: number, max: number): x is number => Number.isInteger(x) && (x as number) >= min && (x as number) <= max

/** The sampling parameters as zod's ParamsSchema checks them (undefined: refused); the reference validParams is tested against. */
export function schemaParams(r: SamplingParams): NormalizedRequest['params'] | undefined {
  const parsed = parseParams(r)
  return parsed.success ? parsed.data : undefined
}

/** Whether zod's ModelIdSchema accepts `x`: the reference isModelId is tested against. */
export const schemaModelId = (x: unknown): boolean => ModelIdSchema.safeParse(x).success

/** What ModelIdSchema accepts (tested to agree). */
export function isModelId(x: unknown): x is string {
  return (
    typeof x === 'string' &&
    x.length >= 1 &&
    x.length <= INFERENCE_LIMITS.maxModelIdBytes &&
    utf8Bytes(x) <= INFERENCE_LIMITS.maxModelIdBytes
  )
}

/** ParamsSchema's result for sampling parameters it accepts, undefined for any it would refuse (tested to agree with {@link schemaParams}). */
export function validParams(r: SamplingParams): NormalizedRequest['params'] | undefined {
  const { maxTokens, temperature = 0, seed = INFERENCE_DEFAULTS.seed, topK = null, topP = null, stop = [] } = r
  if (!isInt(maxTokens, 1, INFERENCE_LIMITS.maxGenerateTokens)) return undefined
  if (typeof temperature !== 'number' || !(temperature >= 0 && temperature <= INFERENCE_LIMITS.maxTemperature)) return undefined
  if (!isInt(seed, 0, INFERENCE_LIMITS.maxSeed)) return undefined
  if (topK !== null && !isInt(topK, 0, INFERENCE_LIMITS.maxTopK)) return undefined
  if (topP !== null && (typeof topP !== 'number' || !(topP > 0 && topP <= 1))) return undefined
  if (!Array.isArray(stop) || stop.length > INFERENCE_LIMITS.maxStopSequences) return undefined
  for (const s of stop) {
    if (typeof s !== 'string' || s.length < 1 || s.length > INFERENCE_LIMITS.maxStopSequenceBytes) return undefined
    if (utf8Bytes(s) > INFERENCE_LIMITS.maxStopSequenceBytes) return undefined
  }
  return { maxTokens, temperature, seed, topK, topP, stop: stop.slice() }
}

/** Checks a model spec before an engine loads it. */
export function checkModelSpec(spec: ModelSpec): ModelSpec {
  const id = ModelIdSchema.safeParse(spec?.id)
  if (!id.success) throw invalid('model id', id.error)
  if (typeof spec.path !== 'string' || spec.path.length === 0 || spec.path.length > 4096) {
    throw new InferenceInputError('INVALID_PARAMS', 'model path must be a non-empty string', { hint: 'give the path of a GGUF file' })
  }
  return { id: id.data, path: spec.path }
}
