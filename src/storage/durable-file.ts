import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { isSystemError, LlmeshError } from '../errors/index.ts'

export class StoreCorruptError extends LlmeshError<'STORE_CORRUPT'> {}

/** Largest durable file read back. */
const MAX_BYTES = 1024 * 1024

/**
 * A small JSON file that is written atomically and synchronously: `write` returns only after the
 * new content and the directory entry are on disk (fsync), so a crash leaves either the old or the
 * new content. Used for what must be durable before a message leaves the node (the double-sign
 * guard, the consensus locks). A file that cannot be parsed is reported, never silently reset.
 */
export class DurableJsonFile<T> {
  readonly path: string
  private readonly parse: (value: unknown) => T

  constructor(path: string, parse: (value: unknown) => T) {
    this.path = path
    this.parse = parse
  }

  /** The stored value, or undefined if the file does not exist. */
  read(): T | undefined {
    let text: string
    try {
      const bytes = readFileSync(this.path)
      if (bytes.byteLength > MAX_BYTES)
        throw new StoreCorruptError('STORE_CORRUPT', `${this.path} is ${bytes.byteLength} bytes, larger than it can be`)
      text = bytes.toString('utf8')
    } catch (err) {
      if (isSystemError(err, 'ENOENT')) return undefined
      throw err
    }
    try {
      return this.parse(JSON.parse(text))
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
      writeSync(fd, `${JSON.stringify(value)}\n`)
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
}
