import { setTimeout as sleep } from 'node:timers/promises'
import { INFERENCE_DEFAULTS, INFERENCE_LIMITS } from '../params/index.ts'
import { renderChatFallback } from './chat-template.ts'
import {
  checkModelSpec,
  type GenerateOptions,
  type GenerateRequest,
  type Generation,
  type InferenceEngine,
  type ModelInfo,
  type ModelSpec,
  type NormalizedRequest,
  normalizeGenerateRequest,
  normalizePromptInput,
  type PromptInput
} from './engine.ts'
import { InferenceInputError, ModelLoadError } from './errors.ts'
import { GenerationStream } from './generation-stream.ts'

export interface EchoEngineInit {
  /** Pause between pieces, to stand in for a model of a given speed; 0 (default) streams at once. */
  tokenIntervalMs?: number
  /** Context window reported for every model, and the prompt size refused beyond it. */
  contextSize?: number
}

/**
 * The echo engine: no model, no file read. A token is one Unicode code point; the prompt is the
 * text (or the chat rendered with {@link renderChatFallback}); the answer is the prompt (for a
 * chat, the last message's content) cut to maxTokens, streamed one token per piece. Sampling
 * parameters are checked and ignored; stop sequences work as in any engine. It lets a benchmark
 * measure the mesh without the cost of a model.
 */
export class EchoEngine implements InferenceEngine {
  readonly kind = 'echo'
  private readonly init: Required<EchoEngineInit>
  private readonly loaded = new Map<string, ModelInfo>()

  constructor(init: EchoEngineInit = {}) {
    this.init = {
      tokenIntervalMs: init.tokenIntervalMs ?? 0,
      contextSize: init.contextSize ?? INFERENCE_DEFAULTS.contextSize
    }
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.loaded.clear()
  }

  async load(spec: ModelSpec): Promise<ModelInfo> {
    const { id, path } = checkModelSpec(spec)
    if (this.loaded.has(id)) {
      throw new ModelLoadError('MODEL_ALREADY_LOADED', id, path, `model ${id} is already loaded`, 'unload it first to load it again')
    }
    if (this.loaded.size >= INFERENCE_LIMITS.maxLoadedModels) {
      throw new ModelLoadError('TOO_MANY_MODELS', id, path, `${this.loaded.size} models are loaded already`, 'unload one first')
    }
    const info: ModelInfo = {
      id,
      path,
      name: 'echo',
      architecture: null,
      contextSize: this.init.contextSize,
      trainContextSize: this.init.contextSize,
      vocabularySize: 0x110000,
      sizeBytes: 0,
      chatTemplate: 'fallback',
      loadMs: 0
    }
    this.loaded.set(id, info)
    return info
  }

  async unload(modelId: string): Promise<void> {
    this.loaded.delete(modelId)
  }

  models(): ModelInfo[] {
    return [...this.loaded.values()]
  }

  async tokenize(modelId: string, text: string): Promise<number[]> {
    this.model(modelId)
    const input = normalizePromptInput({ prompt: text })
    return Array.from(promptText(input), (c) => c.codePointAt(0) as number)
  }

  async countTokens(modelId: string, input: PromptInput): Promise<number> {
    this.model(modelId)
    return Array.from(promptText(normalizePromptInput(input))).length
  }

  generate(request: GenerateRequest, options: GenerateOptions = {}): Generation {
    const req = normalizeGenerateRequest(request)
    const info = this.model(req.model)
    if (this.init.tokenIntervalMs > 0) {
      // paced: a pause between pieces ends early when the caller aborts or the consumer leaves
      const leave = new AbortController()
      const stream = new GenerationStream(() => leave.abort())
      const signal = options.signal == null ? leave.signal : AbortSignal.any([options.signal, leave.signal])
      void this.run(req, info, stream, signal, signal).catch((err: unknown) => stream.fail(err))
      return stream
    }
    // instant: no pause to interrupt, so two flags do instead of a combined AbortSignal per request
    let left = false
    const stream = new GenerationStream(() => {
      left = true
    })
    const callerSignal = options.signal
    const stopped = {
      get aborted(): boolean {
        return left || callerSignal?.aborted === true
      }
    }
    void this.run(req, info, stream, stopped, undefined).catch((err: unknown) => stream.fail(err))
    return stream
  }

  private async run(
    req: NormalizedRequest,
    info: ModelInfo,
    stream: GenerationStream,
    signal: { readonly aborted: boolean },
    pauseSignal: AbortSignal | undefined
  ): Promise<void> {
    const started = performance.now()
    // let the caller attach before anything happens, as with a real engine
    await Promise.resolve()
    const promptTokens = codePoints(promptText(req.input))
    if (promptTokens >= info.contextSize) {
      throw new InferenceInputError(
        'PROMPT_TOO_LONG',
        `prompt of ${promptTokens} tokens does not fit the ${info.contextSize}-token context`,
        {
          hint: 'shorten the prompt'
        }
      )
    }
    const source = req.input.prompt ?? req.input.messages.at(-1)?.content ?? ''
    const answer = source.slice(0, codePointPrefix(source, req.params.maxTokens))
    let text = answer
    let stopSequence: string | null = null
    let cut = answer.length
    for (const stop of req.params.stop) {
      const at = answer.indexOf(stop)
      if (at >= 0 && at < cut) {
        cut = at
        stopSequence = stop
      }
    }
    if (stopSequence != null) text = answer.slice(0, cut)
    const tokens = Array.from(text)
    const base = { stopSequence, promptTokens, seed: req.params.seed }
    let sent = ''
    let firstAt: number | null = null
    const finishAborted = (completionTokens: number): void =>
      stream.finish({ ...base, stopSequence: null, text: sent, finishReason: 'aborted', completionTokens, ...timing(started, firstAt) })
    for (const [i, token] of tokens.entries()) {
      if (signal.aborted) {
        finishAborted(i)
        return
      }
      if (this.init.tokenIntervalMs > 0) await sleep(this.init.tokenIntervalMs, undefined, { signal: pauseSignal }).catch(() => {})
      if (signal.aborted) continue
      firstAt ??= performance.now()
      sent += token
      stream.push(token)
    }
    if (signal.aborted) {
      finishAborted(tokens.length)
      return
    }
    const completionTokens =
      stopSequence == null ? tokens.length : Math.min(req.params.maxTokens, tokens.length + Array.from(stopSequence).length)
    const finishReason = stopSequence != null || answer.length === source.length ? 'stop' : 'length'
    stream.finish({ ...base, text, finishReason, completionTokens, ...timing(started, firstAt) })
  }

  private model(modelId: string): ModelInfo {
    const info = this.loaded.get(modelId)
    if (info == null) {
      throw new InferenceInputError('MODEL_NOT_LOADED', `model ${modelId} is not loaded`, { hint: 'load it first' })
    }
    return info
  }
}

/** Unicode code points in `s` (a lone surrogate counts as one, as string iteration does). */
function codePoints(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++, n++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
    }
  }
  return n
}

/** The UTF-16 length of the first `count` code points of `s`. */
function codePointPrefix(s: string, count: number): number {
  let i = 0
  for (let n = 0; n < count && i < s.length; n++, i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
    }
  }
  return i
}

function promptText(input: PromptInput): string {
  return input.prompt ?? renderChatFallback(input.messages)
}

function timing(started: number, firstAt: number | null): { timeToFirstTokenMs: number | null; durationMs: number } {
  return { timeToFirstTokenMs: firstAt == null ? null : firstAt - started, durationMs: performance.now() - started }
}
