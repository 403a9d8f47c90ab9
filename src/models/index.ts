/**
 * Models: the content-addressed model store. A GGUF file is imported as an IPFS UnixFS DAG
 * (CIDv1, raw leaves, rabin chunks; docs/models.md) whose root CID is the model's identity
 * everywhere; its blocks live in a blockstore under the node home, and a model is written back as
 * a plain file, verified, for the inference engine. Versions of a model share the chunks they
 * have in common, so a new version costs (on disk and over the network) only what changed.
 * In a running node, `ModelService` serves the store over bitswap, announces every model on the
 * DHT and fetches models by CID from the peers that announce them.
 */
export type { BlockReader } from './dag.ts'
export { blockKey, verifyBlock, walkFileDag } from './dag.ts'
export type {
  ModelDagErrorCode,
  ModelFetchErrorCode,
  ModelFileErrorCode,
  ModelInputErrorCode,
  ModelIntegrityErrorCode,
  ModelProviderErrorCode
} from './errors.ts'
export {
  ModelDagError,
  ModelFetchBusyError,
  ModelFetchError,
  ModelFileError,
  ModelInputError,
  ModelIntegrityError,
  ModelNotStoredError,
  ModelProviderError,
  ModelStoreBusyError,
  ModelStoreStoppedError
} from './errors.ts'
export { GGUF_FILE_MAGIC, hasGgufMagic } from './gguf.ts'
export { MODEL_CHUNKER, modelImporterOptions } from './import-options.ts'
export type { FetchModelOptions, ModelExchangeComponents, ModelExchangeInit } from './model-exchange.ts'
export { ModelExchange } from './model-exchange.ts'
export type { StoredModel } from './model-index.ts'
export type { ModelFetchProgress, ModelServiceComponents, ModelServiceFetchOptions, ModelServiceInit } from './model-service.ts'
export { MODEL_SERVICE_DEFAULTS, ModelService } from './model-service.ts'
export type {
  AddModelOptions,
  AdoptOptions,
  ExportResult,
  FetchProgress,
  ModelStoreInit,
  ModelStorePaths,
  RemoveResult
} from './model-store.ts'
export { ModelStore, modelStoreDir, parseModelCid } from './model-store.ts'
export type { StoreLockOptions } from './store-lock.ts'
export { lockStoreDir, STORE_LOCK_DEFAULTS } from './store-lock.ts'
