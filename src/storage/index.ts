/**
 * Storage: what a node keeps on disk. The chain (blocks, commits, state snapshot) in LevelDB, and
 * small files written atomically with fsync for what must be durable before a message leaves the
 * node (the double-sign guard and the consensus locks).
 */
export type { StoredBlock } from './chain-store.ts'
export { ChainStore } from './chain-store.ts'
export type { FileCodec } from './durable-file.ts'
export { DurableFile, jsonCodec, StoreCorruptError } from './durable-file.ts'
export { OwnMessagesFiles } from './own-messages-file.ts'
