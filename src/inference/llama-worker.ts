/**
 * The model worker: a child process that holds one GGUF model in llama.cpp (node-llama-cpp) and
 * serves the engine's requests over fd 3 (see ipc.ts). A hostile file can abort this process
 * (a GGML_ASSERT is not a JS error); the engine in the parent sees the exit and fails only what
 * this worker was doing. Started by ModelWorker; not meant to be run by hand.
 */
import { Socket } from 'node:net'
import {
  type ChatHistoryItem,
  getLlama,
  LlamaCompletion,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  type LlamaText,
  LlamaVocabularyType,
  resolveChatWrapper,
  type Token
} from 'node-llama-cpp'
import { renderChatFallback } from './chat-template.ts'
import type { ChatMessage, PromptInput } from './engine.ts'
import { encodeFrame, FrameReader, type FromWorker, type ToWorker, ToWorkerSchema } from './ipc.ts'

type LoadMessage = Extract<ToWorker, { t: 'load' }>
type GenerateMessage = Extract<ToWorker, { t: 'generate' }>

interface Slot {
  sequence: LlamaContextSequence
  completion: LlamaCompletion
  busy: boolean
}

/** llama.cpp log lines kept to explain a failed load (its JS error only says "Failed to load model"). */
const KEPT_LOG_LINES = 8
/** How long a failed load waits for llama.cpp's last log lines before it reports. */
const LOG_SETTLE_MS = 50

async function main(): Promise<void> {
  const channel = new Socket({ fd: 3, readable: true, writable: true })
  const reader = new FrameReader()
  const send = (msg: FromWorker): void => {
    channel.write(encodeFrame(msg))
  }
  const recentLog: string[] = []
  const logger = (level: LlamaLogLevel, message: string): void => {
    const line = message.trim()
    if (line.length === 0) return
    process.stderr.write(`[llama.cpp ${level}] ${line}\n`)
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal || level === LlamaLogLevel.warn) {
      recentLog.push(line)
      if (recentLog.length > KEPT_LOG_LINES) recentLog.shift()
    }
  }

  let served: Served | undefined
  let loading = false
  const exit = (code: number): void => {
    channel.end(() => process.exit(code))
    setTimeout(() => process.exit(code), 1000).unref()
  }
  channel.on('error', () => process.exit(1))
  // the engine closed the pipe (it stopped, or died): nothing left to serve
  channel.on('end', () => process.exit(0))
  channel.on('data', (chunk: Buffer) => {
    let messages: unknown[]
    try {
      messages = reader.push(chunk)
    } catch (err) {
      process.stderr.write(`worker: bad frame from engine: ${(err as Error).message}\n`)
      exit(2)
      return
    }
    for (const raw of messages) {
      const parsed = ToWorkerSchema.safeParse(raw)
      if (!parsed.success) {
        process.stderr.write(`worker: bad message from engine: ${parsed.error.message}\n`)
        exit(2)
        return
      }
      const msg = parsed.data
      if (msg.t === 'close') {
        void (served?.dispose() ?? Promise.resolve()).finally(() => exit(0))
        return
      }
      if (msg.t === 'load') {
        if (loading || served != null) {
          exit(2)
          return
        }
        loading = true
        load(msg, logger).then(
          (s) => {
            served = s
            send({ t: 'loaded', info: s.info })
          },
          async (err: unknown) => {
            // llama.cpp's log lines arrive through a thread-safe callback, after the rejection
            await new Promise((resolve) => setTimeout(resolve, LOG_SETTLE_MS))
            const detail = recentLog.filter((l) => !/failed to load model$/i.test(l)).join('; ')
            send({ t: 'load-failed', message: truncate(`${(err as Error).message}${detail === '' ? '' : `: ${detail}`}`, 8000) })
          }
        )
        continue
      }
      if (served == null) {
        exit(2)
        return
      }
      served.handle(msg, send)
    }
  })
}

interface Served {
  info: Extract<FromWorker, { t: 'loaded' }>['info']
  handle(msg: Exclude<ToWorker, { t: 'load' | 'close' }>, send: (m: FromWorker) => void): void
  dispose(): Promise<void>
}

async function load(msg: LoadMessage, logger: (level: LlamaLogLevel, message: string) => void): Promise<Served> {
  // build 'never': use the prebuilt binary or fail, never compile or download at load time
  const llama = await getLlama({
    gpu: msg.gpu,
    build: 'never',
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    logger,
    maxThreads: msg.threads
  })
  const model = await llama.loadModel({ modelPath: msg.path })
  const train = model.trainContextSize
  const contextSize = Math.min(msg.contextSize, train > 0 ? train : msg.contextSize)
  const context = await model.createContext({ contextSize, sequences: msg.sequences, threads: msg.threads })
  const slots: Slot[] = []
  for (let i = 0; i < msg.sequences; i++) {
    const sequence = context.getSequence()
    slots.push({ sequence, completion: new LlamaCompletion({ contextSequence: sequence }), busy: false })
  }
  const hasTemplate = typeof model.fileInfo.metadata?.tokenizer?.chat_template === 'string'
  const chatWrapper = hasTemplate ? resolveChatWrapper(model) : null
  let vocabularySize = 0
  for (const _ of model.iterateAllTokens()) vocabularySize++
  const bos = beginningToken(model)
  const active = new Map<number, AbortController>()

  const prepare = (input: PromptInput): { tokens: Token[]; promptTokens: number; triggers: (string | LlamaText)[] } => {
    let tokens: Token[]
    let triggers: (string | LlamaText)[] = []
    if (input.messages != null && chatWrapper != null) {
      const state = chatWrapper.generateContextState({ chatHistory: chatHistory(input.messages) })
      tokens = state.contextText.tokenize(model.tokenizer)
      triggers = state.stopGenerationTriggers
    } else {
      const text = input.prompt ?? renderChatFallback(input.messages)
      tokens = model.tokenize(text, false, bos != null ? 'trimLeadingSpace' : undefined)
    }
    // LlamaCompletion puts the beginning-of-sequence token in front itself
    if (bos != null && tokens[0] === bos) tokens = tokens.slice(1)
    return { tokens, promptTokens: tokens.length + (bos == null ? 0 : 1), triggers }
  }

  const generate = async (msg: GenerateMessage, send: (m: FromWorker) => void): Promise<void> => {
    const slot = slots.find((s) => !s.busy)
    if (slot == null) {
      send({ t: 'error', id: msg.id, code: 'BUSY', message: 'every sequence is busy' })
      return
    }
    slot.busy = true
    const controller = new AbortController()
    active.set(msg.id, controller)
    try {
      const { tokens, promptTokens, triggers } = prepare(msg.input)
      if (promptTokens >= contextSize) {
        send({
          t: 'error',
          id: msg.id,
          code: 'PROMPT_TOO_LONG',
          message: `prompt of ${promptTokens} tokens does not fit the ${contextSize}-token context (one token must be left to generate)`
        })
        return
      }
      send({ t: 'started', id: msg.id, promptTokens })
      // no reuse of a previous request's cache: a prefix evaluated in other batches can differ in
      // the last bits, and the same request must give the same tokens
      await slot.sequence.clearHistory()
      const outputBefore = slot.sequence.tokenMeter.usedOutputTokens
      let released = 0
      const { params } = msg
      const sampling = params.temperature > 0 ? { topK: params.topK ?? undefined, topP: params.topP ?? undefined } : {}
      const res = await slot.completion.generateCompletionWithMeta(tokens, {
        maxTokens: params.maxTokens,
        temperature: params.temperature,
        seed: params.seed,
        ...sampling,
        repeatPenalty: false,
        customStopTriggers: [...params.stop, ...triggers],
        signal: controller.signal,
        stopOnAbortSignal: true,
        // refuse rather than silently drop the start of a long prompt (checked above)
        disableContextShift: true,
        contextShiftSize: 1,
        onToken: (t) => {
          released += t.length
        },
        onTextChunk: (text) => {
          if (text.length > 0) send({ t: 'piece', id: msg.id, text, completionTokens: released })
        }
      })
      const meta = res.metadata
      let stopSequence: string | null = null
      if (meta.stopReason === 'customStopTrigger' && meta.customStopTrigger.every((p) => typeof p === 'string')) {
        const joined = meta.customStopTrigger.join('')
        stopSequence = params.stop.includes(joined) ? joined : null
      }
      send({
        t: 'done',
        id: msg.id,
        text: res.response,
        finishReason: meta.stopReason === 'maxTokens' ? 'length' : meta.stopReason === 'abort' ? 'aborted' : 'stop',
        stopSequence,
        promptTokens,
        completionTokens: slot.sequence.tokenMeter.usedOutputTokens - outputBefore
      })
    } catch (err) {
      send({ t: 'error', id: msg.id, code: 'INTERNAL', message: truncate(String((err as Error)?.message ?? err), 8000) })
    } finally {
      active.delete(msg.id)
      slot.busy = false
    }
  }

  return {
    info: {
      name: truncate(model.fileInfo.metadata?.general?.name ?? '', 256) || null,
      architecture: truncate(model.fileInfo.metadata?.general?.architecture ?? '', 64) || null,
      contextSize,
      trainContextSize: train,
      vocabularySize,
      sizeBytes: model.size,
      chatTemplate: chatWrapper == null ? 'fallback' : 'model'
    },
    handle(msg, send) {
      switch (msg.t) {
        case 'generate':
          void generate(msg, send)
          return
        case 'cancel':
          active.get(msg.id)?.abort()
          return
        case 'tokenize':
        case 'count':
          try {
            if (msg.t === 'count') send({ t: 'count', id: msg.id, tokens: prepare(msg.input).promptTokens })
            else {
              const tokens = model.tokenize(msg.text, false, bos != null ? 'trimLeadingSpace' : undefined)
              send({ t: 'tokens', id: msg.id, tokens: bos == null ? tokens : [bos, ...tokens] })
            }
          } catch (err) {
            send({ t: 'error', id: msg.id, code: 'INTERNAL', message: truncate(String((err as Error)?.message ?? err), 8000) })
          }
          return
      }
    },
    async dispose() {
      for (const c of active.values()) c.abort()
      await llama.dispose()
    }
  }
}

/** The token LlamaCompletion puts in front of a prompt (node-llama-cpp's resolveBeginningTokenToPrepend). */
function beginningToken(model: LlamaModel): Token | null {
  if (model.vocabularyType === LlamaVocabularyType.rwkv || model.vocabularyType === LlamaVocabularyType.ugm) return null
  if (model.vocabularyType === LlamaVocabularyType.wpm) return model.tokens.bos
  return model.tokens.shouldPrependBosToken ? model.tokens.bos : null
}

function chatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((m) => {
    if (m.role === 'assistant') return { type: 'model', response: [m.content] }
    return { type: m.role, text: m.content }
  })
  // an open assistant turn to generate into, unless the last message already is one to continue
  if (messages.at(-1)?.role !== 'assistant') history.push({ type: 'model', response: [] })
  return history
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`
}

await main()
