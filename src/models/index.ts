/**
 * Models: the content-addressed model store. A GGUF file is imported as an IPFS UnixFS DAG
 * (CIDv1, raw leaves, rabin chunks; docs/models.md) whose root CID is the model's identity
 * everywhere; its blocks live in a blockstore under the node home, and a model is written back as
 * a plain file, verified, for the inference engine. Versions of a model share the chunks they
 * have in common, so a new version costs (on disk and over the network) only what changed.
 */
export type { BlockReader } from './dag.ts'
export { blockKey, verifyBlock, walkFileDag } from './dag.ts'
export type {
  ModelDagErrorCode,
  ModelFetchErrorCode,
  ModelFileErrorCode,
  ModelInputErrorCode,
  ModelIntegrityErrorCode
} from './errors.ts'
export {
  ModelDagError,
  ModelFetchError,
  ModelFileError,
  ModelInputError,
  ModelIntegrityError,
  ModelNotStoredError,
  ModelStoreStoppedError
} from './errors.ts'
export { GGUF_FILE_MAGIC, hasGgufMagic } from './gguf.ts'
export { MODEL_CHUNKER, modelImporterOptions } from './import-options.ts'
export type { FetchModelOptions, ModelExchangeComponents, ModelExchangeInit } from './model-exchange.ts'
export { ModelExchange } from './model-exchange.ts'
export type { StoredModel } from './model-index.ts'
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
