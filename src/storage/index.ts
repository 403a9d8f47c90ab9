/**
 * Storage: what a node keeps on disk. The chain (blocks, commits, state snapshot) in LevelDB, and
 * small files written atomically with fsync for what must be durable before a message leaves the
 * node (the double-sign guard, the consensus locks and the validator's own messages: one record
 * with one fsync per signed message, `SignerStateFiles`).
 */
export type { StoredBlock } from './chain-store.ts'
export { ChainStore } from './chain-store.ts'
export type { FileCodec } from './durable-file.ts'
export { DurableFile, jsonCodec, StoreCorruptError } from './durable-file.ts'
export { OwnMessagesFiles } from './own-messages-file.ts'
export type { SignerRecord, SignerStateCodecs } from './signer-state.ts'
export { SignerStateFiles } from './signer-state.ts'
export { SlotFile } from './slot-file.ts'
