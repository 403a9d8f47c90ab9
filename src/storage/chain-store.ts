import { ClassicLevel } from 'classic-level'
import { z } from 'zod'
import { type Block, blockSchema, type ChainState, type Commit, commitSchema, decodeState, encodeState, stateRoot } from '../chain/index.ts'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import { StoreCorruptError } from './durable-file.ts'

/** Blocks kept in memory for peers catching up, beyond which they are read from disk. */
const RECENT_BLOCKS = 256
const MAX_BLOCK_ENTRY_BYTES = 16 * 1024 * 1024

const entrySchema = z.object({ block: blockSchema, commit: commitSchema }).strict()

const heightKey = (h: number): string => `block/${h.toString().padStart(16, '0')}`

export interface StoredBlock {
  block: Block
  commit: Commit
}

/**
 * The chain on disk (LevelDB): every committed block with its commit, and a snapshot of the
 * state after the last one, written together in one atomic batch. Writes are queued in order
 * and run in the background; `flush()` waits for them (call it before exiting).
 */
export class ChainStore {
  private readonly db: ClassicLevel<string, Uint8Array>
  private state: ChainState
  private readonly recent = new Map<number, StoredBlock>()
  private writes: Promise<void> = Promise.resolve()
  private failure: Error | undefined

  private constructor(db: ClassicLevel<string, Uint8Array>, state: ChainState) {
    this.db = db
    this.state = state
  }

  /**
   * Opens (or creates from `genesis`) the store in `dir`. A store of another chain, or one whose
   * snapshot does not decode or does not match its recorded root, is refused with a clear error.
   */
  static async open(dir: string, genesis: ChainState): Promise<ChainStore> {
    const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    await db.open()
    try {
      const raw = await db.get('state')
      if (raw == null) {
        const store = new ChainStore(db, genesis)
        await db.batch(
          [
            { type: 'put', key: 'state', value: encodeStateEntry(genesis) },
            { type: 'put', key: 'genesis-root', value: new TextEncoder().encode(stateRoot(genesis)) }
          ],
          { sync: true }
        )
        return store
      }
      let state: ChainState
      try {
        state = decodeStateEntry(raw)
      } catch (err) {
        throw corrupt(dir, `the state snapshot does not decode: ${(err as Error).message}`, err)
      }
      const genesisRoot = new TextDecoder().decode((await db.get('genesis-root')) ?? new Uint8Array())
      if (state.chainId !== genesis.chainId || genesisRoot !== stateRoot(genesis)) {
        throw new StoreCorruptError('STORE_CORRUPT', `chain store ${dir} belongs to another chain or genesis (${state.chainId})`, {
          hint: 'point the node at the right genesis, or move the store away to start this chain anew'
        })
      }
      return new ChainStore(db, state)
    } catch (err) {
      await db.close()
      throw err
    }
  }

  /** The state after the last committed block. */
  latest(): ChainState {
    return this.state
  }

  /** Queues a committed block and the state after it; they reach disk together, in order. */
  commit(block: Block, commit: Commit, state: ChainState): void {
    if (this.failure != null) throw this.failure
    const h = block.header.height
    const entry = { block, commit }
    this.state = state
    this.recent.set(h, entry)
    this.recent.delete(h - RECENT_BLOCKS)
    const ops = [
      { type: 'put' as const, key: heightKey(h), value: encodeCanonical(entry) },
      { type: 'put' as const, key: 'state', value: encodeStateEntry(state) }
    ]
    this.writes = this.writes.then(() =>
      this.db.batch(ops, { sync: true }).catch((err: Error) => {
        this.failure = err
      })
    )
  }

  /** A block from memory if recent, else undefined (use `readBlock` for older ones). */
  recentBlock(height: number): StoredBlock | undefined {
    return this.recent.get(height)
  }

  async readBlock(height: number): Promise<StoredBlock | undefined> {
    const recent = this.recent.get(height)
    if (recent != null) return recent
    const raw = await this.db.get(heightKey(height))
    if (raw == null) return undefined
    const parsed = entrySchema.safeParse(decodeCanonical(raw, MAX_BLOCK_ENTRY_BYTES))
    if (!parsed.success) throw new StoreCorruptError('STORE_CORRUPT', `block ${height} in the chain store does not decode`)
    return parsed.data as StoredBlock
  }

  /** Waits until every queued write is on disk; rethrows a write failure. */
  async flush(): Promise<void> {
    await this.writes
    if (this.failure != null) throw this.failure
  }

  async close(): Promise<void> {
    await this.flush().finally(() => this.db.close())
  }
}

/** The snapshot with its root beside it, so a damaged snapshot is caught on load. */
function encodeStateEntry(state: ChainState): Uint8Array {
  const snapshot = encodeState(state)
  return encodeCanonical({ root: stateRoot(state), snapshot })
}

function decodeStateEntry(raw: Uint8Array): ChainState {
  const entry = z
    .object({ root: z.string(), snapshot: z.instanceof(Uint8Array) })
    .strict()
    .parse(decodeCanonical(raw, 600 * 1024 * 1024))
  const state = decodeState(entry.snapshot)
  if (stateRoot(state) !== entry.root) throw new Error(`snapshot root ${stateRoot(state)} differs from the recorded ${entry.root}`)
  return state
}

function corrupt(dir: string, what: string, cause: unknown): StoreCorruptError {
  return new StoreCorruptError('STORE_CORRUPT', `chain store ${dir} is corrupted: ${what}`, {
    hint: 'restore it from a backup, or move it away and let the node resync from peers',
    cause
  })
}
