import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { isSystemError, LlmeshError } from '../errors/index.ts'

export class StoreCorruptError extends LlmeshError<'STORE_CORRUPT'> {}

/** Largest durable file read back. */
const MAX_BYTES = 64 * 1024 * 1024

export interface FileCodec<T> {
  encode(value: T): Uint8Array
  /** Throws if the bytes are not a valid T. */
  decode(bytes: Uint8Array): T
}

/** JSON text, checked by `parse` on the way back. */
export function jsonCodec<T>(parse: (value: unknown) => T): FileCodec<T> {
  return {
    encode: (value) => new TextEncoder().encode(`${JSON.stringify(value)}\n`),
    decode: (bytes) => parse(JSON.parse(new TextDecoder().decode(bytes)))
  }
}

/**
 * A small file that is written atomically and synchronously: `write` returns only after the new
 * content and the directory entry are on disk (fsync), so a crash leaves either the old or the new
 * content. Used for what must be durable before a message leaves the node (the double-sign guard,
 * the consensus locks, the validator's own signed messages). A file that cannot be decoded is
 * reported, never silently reset.
 */
export class DurableFile<T> {
  readonly path: string
  private readonly codec: FileCodec<T>

  constructor(path: string, codec: FileCodec<T>) {
    this.path = path
    this.codec = codec
  }

  /** The stored value, or undefined if the file does not exist. */
  read(): T | undefined {
    let bytes: Uint8Array
    try {
      bytes = readFileSync(this.path)
    } catch (err) {
      if (isSystemError(err, 'ENOENT')) return undefined
      throw err
    }
    try {
      if (bytes.byteLength > MAX_BYTES) throw new Error(`${bytes.byteLength} bytes, larger than it can be`)
      return this.codec.decode(bytes)
    } catch (err) {
      throw new StoreCorruptError('STORE_CORRUPT', `${this.path} is corrupted (${(err as Error).message})`, {
        hint: 'restore it from a backup; do not delete it while this validator may have signed at the current height',
        cause: err
      })
    }
  }

  write(value: T): void {
    const tmp = `${this.path}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, this.codec.encode(value))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.path)
    const dir = openSync(dirname(this.path), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
  }

  /**
   * `write` off the event loop (the file system calls run in libuv's pool): resolves once the new
   * content and the directory entry are on disk. The caller keeps such writes in order (one at a
   * time per file), since both use the same temporary file.
   */
  async writeAsync(value: T): Promise<void> {
    const tmp = `${this.path}.tmp`
    const file = await open(tmp, 'w', 0o600)
    try {
      await file.writeFile(this.codec.encode(value))
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(tmp, this.path)
    const dir = await open(dirname(this.path), 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
  }
}
