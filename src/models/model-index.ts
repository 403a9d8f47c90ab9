import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { isSystemError } from '../errors/index.ts'
import { MODEL_LIMITS } from '../params/index.ts'
import { DurableFile } from '../storage/index.ts'
import { ModelIntegrityError } from './errors.ts'

/** One model in the store. */
export interface StoredModel {
  /** Root CID of the model's UnixFS DAG (CIDv1, base32): the model's identity everywhere. */
  cid: string
  name: string
  /** Bytes of the GGUF file. */
  size: number
  /** SHA-256 of the whole file (hex), checked on every export. */
  sha256: string
  /** Distinct blocks in the DAG (leaves and internal nodes). */
  blocks: number
  /** When the model entered this store (ms since the epoch). */
  addedAt: number
  /** How it got here: imported from a local file, or fetched from peers. */
  source: 'file' | 'peer'
}

const StoredModelSchema = z.object({
  cid: z.string().min(1).max(256),
  name: z.string().max(MODEL_LIMITS.maxModelNameBytes),
  size: z.number().int().min(0).max(MODEL_LIMITS.maxModelBytes),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  blocks: z.number().int().min(1).max(MODEL_LIMITS.maxModelBlocks),
  addedAt: z.number().int().min(0),
  source: z.enum(['file', 'peer'])
})

const IndexSchema = z.object({
  version: z.literal(1),
  models: z.array(StoredModelSchema).max(MODEL_LIMITS.maxStoredModels)
})

/**
 * The list of stored models, kept as one small JSON file replaced atomically (written beside,
 * fsynced, renamed, directory fsynced), so a crash leaves the old or the new list, never half.
 * Blocks are written before a model is listed and unlisted before they are deleted: a crash can
 * leave unlisted blocks behind (`ModelStore.gc` removes them), never a listed model without them.
 */
export class ModelIndexFile {
  readonly path: string

  constructor(path: string) {
    this.path = path
  }

  /** The stored models, or none if the file does not exist yet. */
  async read(): Promise<StoredModel[]> {
    let bytes: Buffer
    try {
      bytes = await readFile(this.path)
    } catch (err) {
      if (isSystemError(err, 'ENOENT')) return []
      throw err
    }
    if (bytes.byteLength > MODEL_LIMITS.maxIndexBytes) {
      throw new ModelIntegrityError('MODEL_INDEX_CORRUPT', `${this.path} is ${bytes.byteLength} bytes, larger than it can be`, {
        hint: 'restore it from a backup, or move it away and add the models again'
      })
    }
    try {
      return IndexSchema.parse(JSON.parse(bytes.toString('utf8'))).models
    } catch (err) {
      throw new ModelIntegrityError('MODEL_INDEX_CORRUPT', `${this.path} is corrupted (${(err as Error).message.slice(0, 200)})`, {
        hint: 'restore it from a backup, or move it away and add the models again (their blocks are reused)',
        cause: err
      })
    }
  }

  /** Replaces the list atomically (temporary file, fsync, rename, fsync of the directory). */
  async write(models: StoredModel[]): Promise<void> {
    new DurableFile<StoredModel[]>(this.path, {
      encode: (list) => new TextEncoder().encode(`${JSON.stringify({ version: 1, models: list }, null, 1)}\n`),
      decode: () => {
        throw new Error('the model index is read by ModelIndex.read')
      }
    }).write(models)
  }
}
