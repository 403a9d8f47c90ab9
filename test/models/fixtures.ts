import { createCipheriv, createHash } from 'node:crypto'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { tinyModelBytes } from '../../src/inference/index.ts'
import { ModelStore, type ModelStoreInit } from '../../src/models/index.ts'
import { tempDir } from '../helpers.ts'

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

export const sha256OfFile = async (path: string): Promise<string> => sha256(await readFile(path))

/** Deterministic pseudo-random bytes (AES-128-CTR of zeros under a key made from `seed`): the same on every machine. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const key = Buffer.alloc(16)
  key.writeUInt32BE(seed >>> 0)
  return new Uint8Array(createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length)))
}

/** A GGUF model of `totalBytes`: the tiny model of seed 0 followed by pseudo-random padding. */
export function paddedModel(totalBytes: number, seed = 1): Uint8Array {
  const tiny = tinyModelBytes({ seed: 0 })
  const out = new Uint8Array(totalBytes)
  out.set(tiny.subarray(0, Math.min(tiny.byteLength, totalBytes)))
  if (totalBytes > tiny.byteLength) out.set(pseudoRandomBytes(totalBytes - tiny.byteLength, seed), tiny.byteLength)
  return out
}

/** `bytes` with `inserted` put in at `offset`: what grown GGUF metadata does to every byte after it. */
export function withInsertion(bytes: Uint8Array, offset: number, inserted: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength + inserted.byteLength)
  out.set(bytes.subarray(0, offset))
  out.set(inserted, offset)
  out.set(bytes.subarray(offset), offset + inserted.byteLength)
  return out
}

export async function writeTemp(dir: string, name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, bytes)
  return path
}

/** A started store in a fresh temporary directory, stopped when the test ends. */
export async function startStore(t: TestContext, init: Partial<ModelStoreInit> = {}): Promise<{ store: ModelStore; dir: string }> {
  const dir = await tempDir(t, 'llmesh-models-')
  const store = new ModelStore({ dir: join(dir, 'models'), ...init })
  await store.start()
  t.after(() => store.stop())
  return { store, dir }
}

/** Block files on disk under the store's blocks directory. */
export async function countBlockFiles(store: ModelStore): Promise<number> {
  const entries = await readdir(store.paths.blocks, { recursive: true }).catch(() => [] as string[])
  return entries.filter((e) => e.endsWith('.data')).length
}
