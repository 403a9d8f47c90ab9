import { LlmeshError } from '../errors/index.ts'

export type ModelLoadErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'MODEL_INVALID'
  | 'MODEL_CRASHED'
  | 'MODEL_LOAD_TIMEOUT'
  | 'MODEL_ALREADY_LOADED'
  | 'TOO_MANY_MODELS'

/** A model could not be loaded. The engine itself is unharmed and serves its other models. */
export class ModelLoadError extends LlmeshError<ModelLoadErrorCode> {
  readonly modelId: string
  readonly path: string
  constructor(code: ModelLoadErrorCode, modelId: string, path: string, message: string, hint?: string, cause?: unknown) {
    super(code, message, { hint, cause })
    this.modelId = modelId
    this.path = path
  }
}

export type InferenceInputErrorCode = 'MODEL_NOT_LOADED' | 'PROMPT_TOO_LARGE' | 'PROMPT_TOO_LONG' | 'INVALID_PARAMS'

/** A request the engine refuses as given; sending it again unchanged fails the same way. */
export class InferenceInputError extends LlmeshError<InferenceInputErrorCode> {}

/** Every sequence of the model is busy and its queue is full: retry later or on another host. */
export class InferenceBusyError extends LlmeshError<'INFERENCE_BUSY'> {
  readonly modelId: string
  constructor(modelId: string, queued: number) {
    super('INFERENCE_BUSY', `model ${modelId} is busy (${queued} generations already waiting)`, {
      hint: 'retry later, or send the request to another host'
    })
    this.modelId = modelId
  }
}

/** A request ran past its time limit and was cancelled. */
export class InferenceTimeoutError extends LlmeshError<'INFERENCE_TIMEOUT'> {
  constructor(what: string, timeoutMs: number) {
    super('INFERENCE_TIMEOUT', `${what} took longer than ${timeoutMs} ms and was cancelled`, {
      hint: 'ask for fewer tokens, or raise the timeout'
    })
  }
}

export type InferenceWorkerErrorCode = 'WORKER_CRASHED' | 'WORKER_PROTOCOL' | 'ENGINE_STOPPED'

/**
 * The worker process running a model died or broke the protocol, failing the requests it had.
 * The model is unloaded; loading it again starts a new worker.
 */
export class InferenceWorkerError extends LlmeshError<InferenceWorkerErrorCode> {
  readonly modelId: string
  /** The end of the worker's stderr (a llama.cpp `GGML_ASSERT` shows here). */
  readonly stderrTail: string
  constructor(code: InferenceWorkerErrorCode, modelId: string, message: string, hint: string, stderrTail = '') {
    super(code, message, { hint })
    this.modelId = modelId
    this.stderrTail = stderrTail
  }
}
