import { type ChildProcess, spawn } from 'node:child_process'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { INFERENCE_LIMITS } from '../params/index.ts'
import type { Generation, GenerationResult, ModelInfo, NormalizedRequest, PromptInput } from './engine.ts'
import { InferenceBusyError, InferenceInputError, InferenceTimeoutError, InferenceWorkerError, ModelLoadError } from './errors.ts'
import { GenerationStream } from './generation-stream.ts'
import { encodeFrame, FrameError, FrameReader, type FromWorker, FromWorkerSchema, type ToWorker } from './ipc.ts'

export interface ModelWorkerInit {
  id: string
  path: string
  threads: number
  sequences: number
  contextSize: number
  gpu: false | 'auto'
  maxQueuedGenerations: number
  loadTimeoutMs: number
  requestTimeoutMs: number
  generationTimeoutMs: number
  exitGraceMs: number
  /** How to start the worker: Node arguments before the script, and the script. Default: llama-worker-boot.mjs, which runs llama-worker.ts through tsx. */
  command?: { nodeArgs: string[]; script: string }
}

export interface ModelWorkerComponents {
  log: Logger
  /** Called once when the worker process is gone: `error` is null if it was closed on purpose. */
  onExit: (worker: ModelWorker, error: InferenceWorkerError | null) => void
}

interface PendingGeneration {
  kind: 'generate'
  id: number
  request: NormalizedRequest
  stream: GenerationStream
  text: string
  promptTokens: number
  completionTokens: number
  startedAt: number
  firstAt: number | null
  dispatched: boolean
  /** The caller has its result (aborted or timed out); the worker's late answer only frees the slot. */
  detached: boolean
  timer: NodeJS.Timeout | undefined
  unlisten: () => void
}

interface PendingCall {
  kind: 'call'
  id: number
  resolve: (msg: FromWorker) => void
  reject: (err: unknown) => void
  timer: NodeJS.Timeout
}

function defaultCommand(): { nodeArgs: string[]; script: string } {
  return { nodeArgs: [], script: fileURLToPath(new URL('./llama-worker-boot.mjs', import.meta.url)) }
}

/**
 * One model in one child process (llama-worker.ts). Holds the requests in flight to it, lets at
 * most `sequences` generations run at once and queues a bounded number more, and turns the
 * process dying (a llama.cpp abort, a kill) into typed errors for exactly those requests.
 */
export class ModelWorker {
  readonly id: string
  readonly path: string
  /** Settles when the model is loaded (with its info) or failed to load (with a ModelLoadError). */
  readonly ready: Promise<ModelInfo>
  private readonly c: ModelWorkerComponents
  private readonly init: ModelWorkerInit
  private readonly child: ChildProcess
  private readonly channel: Socket
  private readonly reader = new FrameReader()
  private state: 'loading' | 'ready' | 'closing' | 'gone' = 'loading'
  private loadedInfo: ModelInfo | undefined
  private stderrTail = ''
  private nextId = 1
  private active = 0
  private readonly queue: PendingGeneration[] = []
  private readonly pending = new Map<number, PendingGeneration | PendingCall>()
  private settleLoad!: { resolve: (info: ModelInfo) => void; reject: (err: unknown) => void }
  private readonly exited: Promise<void>
  private readonly startedAt = performance.now()

  constructor(components: ModelWorkerComponents, init: ModelWorkerInit) {
    this.c = components
    this.init = init
    this.id = init.id
    this.path = init.path
    this.ready = new Promise<ModelInfo>((resolve, reject) => {
      this.settleLoad = { resolve, reject }
    })
    this.ready.catch(() => {})
    const command = init.command ?? defaultCommand()
    this.child = spawn(process.execPath, [...command.nodeArgs, command.script], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      env: process.env
    })
    this.channel = this.child.stdio[3] as Socket
    this.exited = new Promise<void>((resolve) => {
      this.child.once('close', () => resolve())
      // a process that could not be spawned may never emit 'close'
      this.child.once('error', () => resolve())
    })
    this.child.stdout?.on('data', (b: Buffer) => this.keepOutput(b))
    this.child.stderr?.on('data', (b: Buffer) => this.keepOutput(b))
    this.child.once('error', (err) => this.gone(null, null, `could not start: ${err.message}`))
    this.child.once('exit', (code, signal) => this.gone(code, signal))
    this.channel.on('error', () => {})
    this.channel.on('data', (chunk: Buffer) => this.receive(chunk))

    const timer = setTimeout(() => {
      if (this.state !== 'loading') return
      this.state = 'closing'
      this.settleLoad.reject(
        new ModelLoadError(
          'MODEL_LOAD_TIMEOUT',
          this.id,
          this.path,
          `model ${this.id} did not load within ${init.loadTimeoutMs} ms`,
          'check the file and the machine (memory, disk), or raise the load timeout'
        )
      )
      this.kill()
    }, init.loadTimeoutMs)
    this.ready.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer)
    )
    this.send({
      t: 'load',
      path: init.path,
      contextSize: init.contextSize,
      threads: init.threads,
      sequences: init.sequences,
      gpu: init.gpu
    })
  }

  /** The worker's process id (for operators and tests). */
  get pid(): number | undefined {
    return this.child.pid
  }

  get info(): ModelInfo | undefined {
    return this.state === 'ready' ? this.loadedInfo : undefined
  }

  generate(request: NormalizedRequest, signal?: AbortSignal): Generation {
    this.assertReady()
    if (this.active >= this.init.sequences && this.queue.length >= this.init.maxQueuedGenerations) {
      throw new InferenceBusyError(this.id, this.queue.length)
    }
    const g: PendingGeneration = {
      kind: 'generate',
      id: this.nextId++,
      request,
      stream: new GenerationStream(() => this.cancel(g)),
      text: '',
      promptTokens: 0,
      completionTokens: 0,
      startedAt: performance.now(),
      firstAt: null,
      dispatched: false,
      detached: false,
      timer: undefined,
      unlisten: () => {}
    }
    if (signal != null) {
      const onAbort = (): void => this.cancel(g)
      signal.addEventListener('abort', onAbort, { once: true })
      g.unlisten = () => signal.removeEventListener('abort', onAbort)
    }
    g.timer = setTimeout(
      () => this.cancel(g, new InferenceTimeoutError('generation', this.init.generationTimeoutMs)),
      this.init.generationTimeoutMs
    )
    if (signal?.aborted === true) {
      // still give the caller a generation to read: it ends at once, as cancelled
      queueMicrotask(() => this.cancel(g))
      return g.stream
    }
    if (this.active < this.init.sequences) this.dispatch(g)
    else this.queue.push(g)
    return g.stream
  }

  async tokenize(text: string): Promise<number[]> {
    const reply = await this.call((id) => ({ t: 'tokenize', id, text }))
    if (reply.t !== 'tokens') throw this.protocolError(`expected tokens, got ${reply.t}`)
    return reply.tokens
  }

  async countTokens(input: PromptInput): Promise<number> {
    const reply = await this.call((id) => ({ t: 'count', id, input }))
    if (reply.t !== 'count') throw this.protocolError(`expected a count, got ${reply.t}`)
    return reply.tokens
  }

  /** Fails what is pending, asks the worker to exit, and kills it if it has not after the grace period. */
  async close(): Promise<void> {
    if (this.state === 'gone') return this.exited
    const wasLoading = this.state === 'loading'
    this.state = 'closing'
    const stopped = new InferenceWorkerError('ENGINE_STOPPED', this.id, `model ${this.id} was unloaded`, 'load it again to use it')
    if (wasLoading) this.settleLoad.reject(stopped)
    this.failAll(stopped)
    try {
      this.send({ t: 'close' })
      this.channel.end()
    } catch {
      // the pipe is already gone; the kill below settles it
    }
    const timer = setTimeout(() => this.kill(), this.init.exitGraceMs)
    await this.exited
    clearTimeout(timer)
  }

  /** Ends the worker process at once (SIGKILL to its pid). */
  kill(): void {
    if (this.child.exitCode == null && this.child.signalCode == null) this.child.kill('SIGKILL')
  }

  private assertReady(): void {
    if (this.state !== 'ready') {
      throw new InferenceInputError('MODEL_NOT_LOADED', `model ${this.id} is not loaded (${this.state})`, { hint: 'load it first' })
    }
  }

  private dispatch(g: PendingGeneration): void {
    const { input, params } = g.request
    let frame: Buffer
    try {
      frame = encodeFrame({ t: 'generate', id: g.id, input, params } satisfies ToWorker)
    } catch (err) {
      // only a prompt of JSON-escaped control characters can get here: the byte limit held, the frame did not
      this.release(g)
      g.stream.fail(new InferenceInputError('PROMPT_TOO_LARGE', (err as Error).message, { hint: 'shorten the prompt' }))
      return
    }
    this.active++
    g.dispatched = true
    this.pending.set(g.id, g)
    this.write(frame)
  }

  private pump(): void {
    while (this.state === 'ready' && this.active < this.init.sequences) {
      const next = this.queue.shift()
      if (next == null) return
      this.dispatch(next)
    }
  }

  /** The caller aborted or left (no error), or the generation timed out (an error): answer it now, stop the worker's work. */
  private cancel(g: PendingGeneration, error?: InferenceTimeoutError): void {
    if (!g.stream.running) return
    this.release(g)
    if (error != null) g.stream.fail(error)
    else g.stream.abort(this.partialResult(g))
    if (!g.dispatched) {
      const at = this.queue.indexOf(g)
      if (at >= 0) this.queue.splice(at, 1)
      return
    }
    g.detached = true
    if (this.state === 'ready') this.send({ t: 'cancel', id: g.id })
  }

  private release(g: PendingGeneration): void {
    clearTimeout(g.timer)
    g.unlisten()
  }

  private partialResult(g: PendingGeneration): GenerationResult {
    return {
      text: g.text,
      finishReason: 'aborted',
      stopSequence: null,
      promptTokens: g.promptTokens,
      completionTokens: g.completionTokens,
      seed: g.request.params.seed,
      ...this.timing(g)
    }
  }

  private timing(g: PendingGeneration): Pick<GenerationResult, 'timeToFirstTokenMs' | 'durationMs'> {
    return { timeToFirstTokenMs: g.firstAt == null ? null : g.firstAt - g.startedAt, durationMs: performance.now() - g.startedAt }
  }

  private call(build: (id: number) => ToWorker): Promise<FromWorker> {
    this.assertReady()
    const id = this.nextId++
    const frame = encodeFrame(build(id))
    return new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new InferenceTimeoutError('a tokenize request', this.init.requestTimeoutMs))
      }, this.init.requestTimeoutMs)
      this.pending.set(id, { kind: 'call', id, resolve, reject, timer })
      this.write(frame)
    })
  }

  private send(msg: ToWorker): void {
    this.write(encodeFrame(msg))
  }

  private write(frame: Buffer): void {
    // a worker that is gone fails its requests through its exit; nothing to write to
    if (!this.channel.destroyed && this.channel.writable) this.channel.write(frame)
  }

  private receive(chunk: Buffer): void {
    let raw: unknown[]
    try {
      raw = this.reader.push(chunk)
    } catch (err) {
      this.broken(err instanceof FrameError ? err.message : String(err))
      return
    }
    for (const r of raw) {
      const parsed = FromWorkerSchema.safeParse(r)
      if (!parsed.success) {
        this.broken(`malformed message: ${parsed.error.issues[0]?.message ?? 'unknown'}`)
        return
      }
      this.handle(parsed.data)
    }
  }

  private handle(msg: FromWorker): void {
    switch (msg.t) {
      case 'loaded':
        if (this.state !== 'loading') return
        this.state = 'ready'
        this.loadedInfo = { id: this.id, path: this.path, ...msg.info, loadMs: performance.now() - this.startedAt }
        this.settleLoad.resolve(this.loadedInfo)
        return
      case 'load-failed':
        if (this.state !== 'loading') return
        this.state = 'closing'
        this.settleLoad.reject(
          new ModelLoadError(
            'MODEL_INVALID',
            this.id,
            this.path,
            `llama.cpp cannot load ${this.path}: ${msg.message}`,
            'the file is damaged or not a model llama.cpp supports; fetch it again or use another file'
          )
        )
        void this.close()
        return
    }
    const p = this.pending.get(msg.id)
    if (p == null) return
    if (p.kind === 'call') {
      this.pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.t === 'error') p.reject(this.workerRequestError(msg))
      else p.resolve(msg)
      return
    }
    const g = p
    switch (msg.t) {
      case 'started':
        g.promptTokens = msg.promptTokens
        return
      case 'piece':
        if (g.detached) return
        g.firstAt ??= performance.now()
        g.text += msg.text
        g.completionTokens = msg.completionTokens
        g.stream.push(msg.text)
        return
      case 'done':
      case 'error':
        this.pending.delete(g.id)
        this.active--
        if (!g.detached) {
          this.release(g)
          if (msg.t === 'error') g.stream.fail(this.workerRequestError(msg))
          else {
            g.stream.finish({
              text: msg.text,
              finishReason: msg.finishReason,
              stopSequence: msg.stopSequence,
              promptTokens: msg.promptTokens,
              completionTokens: msg.completionTokens,
              seed: g.request.params.seed,
              // on the engine's clock, so time spent queued counts
              ...this.timing(g)
            })
          }
        }
        this.pump()
        return
      default:
        this.broken(`unexpected ${msg.t} for a generation`)
    }
  }

  private workerRequestError(msg: Extract<FromWorker, { t: 'error' }>): Error {
    if (msg.code === 'PROMPT_TOO_LONG') return new InferenceInputError('PROMPT_TOO_LONG', msg.message, { hint: 'shorten the prompt' })
    return new InferenceWorkerError(
      'WORKER_PROTOCOL',
      this.id,
      `model ${this.id} failed the request: ${msg.message}`,
      'retry; report it if it persists'
    )
  }

  private protocolError(detail: string): InferenceWorkerError {
    return new InferenceWorkerError(
      'WORKER_PROTOCOL',
      this.id,
      `worker for model ${this.id} broke the protocol: ${detail}`,
      'the worker was stopped; load the model again'
    )
  }

  /** The worker sent something it must not: stop trusting it. */
  private broken(detail: string): void {
    this.c.log.error({ model: this.id, detail }, 'model worker broke the protocol; killing it')
    const error = this.protocolError(detail)
    if (this.state === 'loading') {
      this.settleLoad.reject(
        new ModelLoadError('MODEL_INVALID', this.id, this.path, error.message, 'load it again; report it if it persists')
      )
    }
    this.state = 'closing'
    this.failAll(error)
    this.kill()
  }

  private keepOutput(b: Buffer): void {
    const max = INFERENCE_LIMITS.maxWorkerStderrBytes
    this.stderrTail = (this.stderrTail + b.toString('utf8')).slice(-max)
  }

  private failAll(err: Error): void {
    for (const g of this.queue.splice(0)) {
      this.release(g)
      g.stream.fail(err)
    }
    for (const p of this.pending.values()) {
      if (p.kind === 'call') {
        clearTimeout(p.timer)
        p.reject(err)
      } else if (!p.detached) {
        this.release(p)
        p.stream.fail(err)
      }
    }
    this.pending.clear()
    this.active = 0
  }

  private gone(code: number | null, signal: NodeJS.Signals | null, detail?: string): void {
    if (this.state === 'gone') return
    const expected = this.state === 'closing'
    const wasLoading = this.state === 'loading'
    this.state = 'gone'
    let error: InferenceWorkerError | null = null
    if (!expected) {
      const how = detail ?? (signal != null ? `was killed by ${signal}` : `exited with code ${code}`)
      const cause = lastTelling(this.stderrTail)
      const message = `the worker for model ${this.id} ${how}${cause == null ? '' : `: ${cause}`}`
      if (wasLoading) {
        this.settleLoad.reject(
          new ModelLoadError(
            'MODEL_CRASHED',
            this.id,
            this.path,
            `${message} while loading ${this.path}`,
            'the file made llama.cpp abort: it is damaged or hostile; do not serve it'
          )
        )
      }
      error = new InferenceWorkerError(
        'WORKER_CRASHED',
        this.id,
        message,
        'the model was unloaded; load it again to serve it',
        this.stderrTail
      )
      this.failAll(error)
      this.c.log.error({ model: this.id, code, signal, stderr: this.stderrTail.slice(-1024) }, 'model worker died')
    }
    this.channel.destroy()
    this.c.onExit(this, error)
  }
}

/** The line of a worker's output that best says why it died: an assert or error line, else the last line. */
function lastTelling(tail: string): string | null {
  const lines = tail
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
  const telling = [...lines].reverse().find((l) => /GGML_ASSERT|error|abort|terminate/i.test(l))
  const line = telling ?? lines.at(-1)
  return line == null ? null : line.slice(0, 500)
}
