import { LlmeshError } from '../errors/index.ts'

export type ModelFileErrorCode = 'MODEL_FILE_MISSING' | 'MODEL_NOT_GGUF' | 'MODEL_TOO_LARGE' | 'MODEL_FILE_CHANGED'

/** A file given to `add` cannot be imported. Nothing was written to the store. */
export class ModelFileError extends LlmeshError<ModelFileErrorCode> {
  readonly path: string
  constructor(code: ModelFileErrorCode, path: string, message: string, hint: string, cause?: unknown) {
    super(code, message, { hint, cause })
    this.path = path
  }
}

export type ModelInputErrorCode = 'INVALID_CID' | 'INVALID_MODEL_NAME' | 'MODEL_NOT_STORED' | 'MODEL_STORE_FULL'

/** A request the store refuses as given; sending it again unchanged fails the same way. */
export class ModelInputError extends LlmeshError<ModelInputErrorCode> {}

/** The model with this CID is not in the store. */
export class ModelNotStoredError extends ModelInputError {
  readonly cid: string
  constructor(cid: string) {
    super('MODEL_NOT_STORED', `model ${cid} is not in this node's model store`, {
      hint: 'list the stored models, add the file, or fetch the model from a peer that has it'
    })
    this.cid = cid
  }
}

export type ModelIntegrityErrorCode = 'MODEL_CORRUPT' | 'MODEL_INDEX_CORRUPT'

/**
 * What the store holds on disk does not match what it recorded: a block whose bytes do not hash to
 * its CID, a missing block, an exported file whose hash differs, an unreadable index.
 */
export class ModelIntegrityError extends LlmeshError<ModelIntegrityErrorCode> {}

export type ModelDagErrorCode = 'MODEL_DAG_INVALID' | 'MODEL_DAG_UNSUPPORTED' | 'MODEL_DAG_TOO_LARGE'

/** A DAG (usually one fetched from a peer) is not a UnixFS file this store can hold. */
export class ModelDagError extends LlmeshError<ModelDagErrorCode> {
  readonly cid: string
  constructor(code: ModelDagErrorCode, cid: string, message: string, hint: string) {
    super(code, message, { hint })
    this.cid = cid
  }
}

export type ModelFetchErrorCode = 'MODEL_FETCH_FAILED' | 'MODEL_FETCH_TIMEOUT' | 'MODEL_EXCHANGE_STOPPED'

/** A model could not be fetched from peers. Blocks fetched before the failure are removed again. */
export class ModelFetchError extends LlmeshError<ModelFetchErrorCode> {
  readonly cid: string
  constructor(code: ModelFetchErrorCode, cid: string, message: string, hint: string, cause?: unknown) {
    super(code, message, { hint, cause })
    this.cid = cid
  }
}

/** The store was used before `start()` or after `stop()`. */
export class ModelStoreStoppedError extends LlmeshError<'MODEL_STORE_STOPPED'> {
  constructor() {
    super('MODEL_STORE_STOPPED', 'the model store is not running', { hint: 'start the store (or the node) first' })
  }
}

/** Another process (a running node fetching, or `llmesh model add`) kept the store's lock longer than the wait allows. */
export class ModelStoreBusyError extends LlmeshError<'MODEL_STORE_BUSY'> {
  readonly lockPath: string
  readonly holder: number | undefined
  constructor(lockPath: string, holder: number | undefined) {
    super('MODEL_STORE_BUSY', `the model store is busy: ${holder == null ? 'another process' : `process ${holder}`} holds ${lockPath}`, {
      hint: 'a running node may be fetching a model, or `llmesh model add` importing one, into this store; try again when it finishes'
    })
    this.lockPath = lockPath
    this.holder = holder
  }
}

export type ModelProviderErrorCode = 'MODEL_NO_PROVIDER' | 'MODEL_PROVIDERS_UNREACHABLE'

/** No peer holding the model could be found on the DHT, or none of those found could be reached. */
export class ModelProviderError extends LlmeshError<ModelProviderErrorCode> {
  readonly cid: string
  /** Providers the DHT listed (0 for `MODEL_NO_PROVIDER`). */
  readonly providers: number
  constructor(code: ModelProviderErrorCode, cid: string, providers: number, message: string, hint: string, cause?: unknown) {
    super(code, message, { hint, cause })
    this.cid = cid
    this.providers = providers
  }
}

/** The node is already fetching as many models (or has as many callers waiting on one) as it allows. */
export class ModelFetchBusyError extends LlmeshError<'MODEL_FETCH_BUSY'> {}
