import { open, stat } from 'node:fs/promises'
import type { Logger } from 'pino'
import { isSystemError } from '../errors/index.ts'
import { INFERENCE_DEFAULTS, INFERENCE_LIMITS } from '../params/index.ts'
import {
  checkModelSpec,
  type GenerateOptions,
  type GenerateRequest,
  type Generation,
  type InferenceEngine,
  type ModelInfo,
  type ModelSpec,
  normalizeGenerateRequest,
  normalizePromptInput,
  type PromptInput
} from './engine.ts'
import { InferenceInputError, ModelLoadError } from './errors.ts'
import { GGUF_MAGIC } from './gguf-writer.ts'
import { ModelWorker, type ModelWorkerInit } from './model-worker.ts'

export interface LlamaEngineInit {
  /** Threads per model. Default 1: on 2 cores, decoding with 2 threads was 20x slower. */
  threads?: number
  /** Generations one model runs at once; more wait in a bounded queue. */
  sequences?: number
  /** Context window per sequence, capped by the model's training context. */
  contextSize?: number
  /** `false` (default): CPU only, the same numbers on every host of one CPU kind. */
  gpu?: false | 'auto'
  maxLoadedModels?: number
  maxQueuedGenerations?: number
  loadTimeoutMs?: number
  requestTimeoutMs?: number
  generationTimeoutMs?: number
  workerExitGraceMs?: number
  /** How to start a worker (Node arguments and script); the default runs llama-worker.ts through tsx. */
  workerCommand?: ModelWorkerInit['command']
}

export interface LlamaEngineComponents {
  log: Logger
}

/**
 * The llama.cpp engine (node-llama-cpp): each loaded model lives in its own worker process, so
 * a file that makes llama.cpp abort costs that model's requests, never the node. A worker that
 * dies is dropped; loading the model again starts a fresh one.
 */
export class LlamaEngine implements InferenceEngine {
  readonly kind = 'llama'
  private readonly c: LlamaEngineComponents
  private readonly init: Required<Omit<LlamaEngineInit, 'workerCommand'>> & Pick<LlamaEngineInit, 'workerCommand'>
  private readonly workers = new Map<string, ModelWorker>()

  constructor(components: LlamaEngineComponents, init: LlamaEngineInit = {}) {
    this.c = components
    this.init = {
      threads: init.threads ?? INFERENCE_DEFAULTS.threads,
      sequences: init.sequences ?? INFERENCE_DEFAULTS.sequences,
      contextSize: init.contextSize ?? INFERENCE_DEFAULTS.contextSize,
      gpu: init.gpu ?? false,
      maxLoadedModels: init.maxLoadedModels ?? INFERENCE_LIMITS.maxLoadedModels,
      maxQueuedGenerations: init.maxQueuedGenerations ?? INFERENCE_LIMITS.maxQueuedGenerations,
      loadTimeoutMs: init.loadTimeoutMs ?? INFERENCE_DEFAULTS.loadTimeoutMs,
      requestTimeoutMs: init.requestTimeoutMs ?? INFERENCE_DEFAULTS.requestTimeoutMs,
      generationTimeoutMs: init.generationTimeoutMs ?? INFERENCE_DEFAULTS.generationTimeoutMs,
      workerExitGraceMs: init.workerExitGraceMs ?? INFERENCE_DEFAULTS.workerExitGraceMs,
      workerCommand: init.workerCommand
    }
    for (const key of ['threads', 'sequences', 'contextSize', 'maxLoadedModels'] as const) {
      if (!Number.isInteger(this.init[key]) || this.init[key] < 1) throw new RangeError(`llama engine: ${key} must be a positive integer`)
    }
  }

  async start(): Promise<void> {}

  /** Unloads every model: their pending requests fail with ENGINE_STOPPED and their workers exit. */
  async stop(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.close()))
    this.workers.clear()
  }

  async load(spec: ModelSpec): Promise<ModelInfo> {
    const { id, path } = checkModelSpec(spec)
    if (this.workers.has(id)) {
      throw alreadyLoaded(id, path)
    }
    if (this.workers.size >= this.init.maxLoadedModels) {
      throw new ModelLoadError('TOO_MANY_MODELS', id, path, `${this.workers.size} models are loaded already`, 'unload one first')
    }
    await checkGgufFile(id, path)
    // checked again: another load of the same id may have started while the file was read
    if (this.workers.has(id)) {
      throw alreadyLoaded(id, path)
    }
    const worker = new ModelWorker(
      {
        log: this.c.log,
        onExit: (w, error) => {
          if (this.workers.get(w.id) === w) this.workers.delete(w.id)
          if (error != null) this.c.log.warn({ model: w.id, code: error.code }, 'model unloaded: its worker died')
        }
      },
      {
        id,
        path,
        threads: this.init.threads,
        sequences: this.init.sequences,
        contextSize: this.init.contextSize,
        gpu: this.init.gpu,
        maxQueuedGenerations: this.init.maxQueuedGenerations,
        loadTimeoutMs: this.init.loadTimeoutMs,
        requestTimeoutMs: this.init.requestTimeoutMs,
        generationTimeoutMs: this.init.generationTimeoutMs,
        exitGraceMs: this.init.workerExitGraceMs,
        command: this.init.workerCommand
      }
    )
    this.workers.set(id, worker)
    try {
      const info = await worker.ready
      this.c.log.info({ model: id, name: info.name, contextSize: info.contextSize, loadMs: Math.round(info.loadMs) }, 'model loaded')
      return info
    } catch (err) {
      if (this.workers.get(id) === worker) this.workers.delete(id)
      await worker.close()
      throw err
    }
  }

  async unload(modelId: string): Promise<void> {
    const worker = this.workers.get(modelId)
    if (worker == null) return
    this.workers.delete(modelId)
    await worker.close()
  }

  models(): ModelInfo[] {
    return [...this.workers.values()].flatMap((w) => (w.info == null ? [] : [w.info]))
  }

  /** Process id of the worker holding a model, if it is loaded or loading. */
  workerPid(modelId: string): number | undefined {
    return this.workers.get(modelId)?.pid
  }

  async tokenize(modelId: string, text: string): Promise<number[]> {
    const { prompt } = normalizePromptInput({ prompt: text }) as { prompt: string }
    return this.worker(modelId).tokenize(prompt)
  }

  async countTokens(modelId: string, input: PromptInput): Promise<number> {
    return this.worker(modelId).countTokens(normalizePromptInput(input))
  }

  generate(request: GenerateRequest, options: GenerateOptions = {}): Generation {
    const req = normalizeGenerateRequest(request)
    return this.worker(req.model).generate(req, options.signal)
  }

  private worker(modelId: string): ModelWorker {
    const worker = this.workers.get(modelId)
    if (worker?.info == null) {
      throw new InferenceInputError('MODEL_NOT_LOADED', `model ${modelId} is not loaded`, { hint: 'load it first' })
    }
    return worker
  }
}

/** Refuses, without starting a worker, a path that is missing, not a file, or not GGUF at all. */
async function checkGgufFile(id: string, path: string): Promise<void> {
  let size: number
  try {
    const s = await stat(path)
    if (!s.isFile()) throw new ModelLoadError('MODEL_INVALID', id, path, `${path} is not a file`, 'give the path of a GGUF file')
    size = s.size
  } catch (err) {
    if (err instanceof ModelLoadError) throw err
    if (isSystemError(err, 'ENOENT')) {
      throw new ModelLoadError(
        'MODEL_NOT_FOUND',
        id,
        path,
        `model file ${path} does not exist`,
        'fetch the model first, or check the path',
        err
      )
    }
    throw new ModelLoadError('MODEL_INVALID', id, path, `cannot read ${path}: ${(err as Error).message}`, 'check its permissions', err)
  }
  const head = Buffer.alloc(4)
  const file = await open(path, 'r')
  try {
    await file.read(head, 0, 4, 0)
  } finally {
    await file.close()
  }
  if (size < 4 || head.toString('latin1') !== GGUF_MAGIC) {
    throw new ModelLoadError(
      'MODEL_INVALID',
      id,
      path,
      `${path} is not a GGUF file (it starts with 0x${head.subarray(0, Math.min(size, 4)).toString('hex')}, not "GGUF")`,
      'llama.cpp reads GGUF models only; convert the model, or check that the download finished'
    )
  }
}

function alreadyLoaded(id: string, path: string): ModelLoadError {
  return new ModelLoadError(
    'MODEL_ALREADY_LOADED',
    id,
    path,
    `model ${id} is already loaded or loading`,
    'unload it first to load it again'
  )
}
