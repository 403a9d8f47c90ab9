/**
 * Inference: engines behind one interface. `LlamaEngine` runs GGUF models with llama.cpp
 * (node-llama-cpp), each model in its own worker process so a hostile file cannot take the node
 * down; `EchoEngine` answers instantly without a model, for measuring the mesh. The built-in
 * tiny model (random weights, written from a seed) lets tests and fresh nodes run the real
 * llama.cpp path without downloading anything. Hosts serve engines over `/llmesh/infer/2.0.0`
 * (`InferenceHost`), edges reach them through sealed sessions (`HostSessions`), and hosts
 * advertise what they serve on gossip (`HostAdverts`); every finished job yields a signed receipt.
 */

export type { Advert, AdvertRejectReason, HostAdvertsComponents, HostAdvertsInit, KnownHost } from './adverts.ts'
export { AdvertSchema, decodeAdvert, HostAdverts } from './adverts.ts'
export { renderChatFallback } from './chat-template.ts'
export type { EchoEngineInit } from './echo-engine.ts'
export { EchoEngine } from './echo-engine.ts'
export type {
  ChatMessage,
  ChatRole,
  FinishReason,
  GenerateOptions,
  GenerateRequest,
  Generation,
  GenerationResult,
  InferenceEngine,
  ModelInfo,
  ModelSpec,
  NormalizedRequest,
  PromptInput,
  SamplingParams
} from './engine.ts'
export { checkModelSpec, normalizeGenerateRequest, normalizePromptInput } from './engine.ts'
export type { InferenceInputErrorCode, InferenceWorkerErrorCode, ModelLoadErrorCode } from './errors.ts'
export { InferenceBusyError, InferenceInputError, InferenceTimeoutError, InferenceWorkerError, ModelLoadError } from './errors.ts'
export type { GgufMetadataEntry, GgufScalar, GgufScalarType, GgufTensor } from './gguf-writer.ts'
export { encodeGguf, GGUF_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION } from './gguf-writer.ts'
export type { HostLimits, InferenceHostComponents, InferenceHostInit, SessionRejectReason } from './host.ts'
export { InferenceHost } from './host.ts'
export type { HostErrorCode, HostSessionComponents, JobOutcome } from './infer-client.ts'
export { HostError, HostSession, HostSessions } from './infer-client.ts'
export type { LlamaEngineComponents, LlamaEngineInit } from './llama-engine.ts'
export { LlamaEngine } from './llama-engine.ts'
export type { Frame, Job, JobErrorCode, JobResult } from './protocol.ts'
export { decodeFrame, encodeFrame, encodeJob, FrameError, JOB_ERROR_CODES, jobFromRequest } from './protocol.ts'
export type { Receipt, ReceiptBody } from './receipt.ts'
export { MAX_RECEIPT_BYTES, ReceiptError, receiptJson, signReceipt, verifyReceipt } from './receipt.ts'
export type { TinyModelOptions } from './tiny-model.ts'
export { TINY_VOCABULARY_SIZE, tinyModelBytes, tinyModelParameters, writeTinyModel } from './tiny-model.ts'
