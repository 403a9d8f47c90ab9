import { createHash } from 'node:crypto'
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { isSystemError } from '../errors/index.ts'
import { type FileCodec, StoreCorruptError } from './durable-file.ts'

/** Largest record a slot file holds. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024
const MAGIC = 0x4c4d5331 // 'LMS1'
/** magic u32, sequence u64 (as two u32), length u32 */
const HEAD_BYTES = 16
const SUM_BYTES = 32
const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest()

/**
 * A small record made durable with **one fsync per write**, for what must be on disk before a
 * message leaves the node and is rewritten several times a second (the validator's signing state).
 * Two slot files (`name.0`, `name.1`) are written in turn, each record framed with a sequence
 * number, its length and a SHA-256 of both: a write overwrites the older slot in place and syncs
 * that one file, so no rename and no directory sync are needed. A crash during a write leaves that
 * slot torn (its checksum fails) and the other slot holding the previous record, which is what
 * `read` returns. A record that cannot be decoded, or two slots that are both torn, are reported,
 * never silently reset.
 */
export class SlotFile<T> {
  readonly path: string
  private readonly codec: FileCodec<T>
  private readonly fds: [number, number]
  private seq: number

  /** Opens (creating if absent) the two slots of `path`; the directory is synced once if they are new. */
  constructor(path: string, codec: FileCodec<T>) {
    this.path = path
    this.codec = codec
    let created = false
    const open = (slot: string): number => {
      try {
        return openSync(slot, 'r+')
      } catch (err) {
        if (!isSystemError(err, 'ENOENT')) throw err
        created = true
        return openSync(slot, 'w+', 0o600)
      }
    }
    this.fds = [open(`${path}.0`), open(`${path}.1`)]
    if (created) {
      const dir = openSync(dirname(path), 'r')
      try {
        fsyncSync(dir)
      } finally {
        closeSync(dir)
      }
    }
    this.seq = Math.max(this.slot(0)?.seq ?? 0, this.slot(1)?.seq ?? 0)
  }

  /** The latest record written, or undefined if none ever was. */
  read(): T | undefined {
    const a = this.slot(0)
    const b = this.slot(1)
    const latest = a == null ? b : b == null ? a : a.seq >= b.seq ? a : b
    if (latest == null) {
      if (this.size(0) > 0 && this.size(1) > 0) throw this.corrupt('both slots are torn', undefined)
      return undefined
    }
    try {
      return this.codec.decode(latest.payload)
    } catch (err) {
      throw this.corrupt(`record ${latest.seq} does not decode (${(err as Error).message})`, err)
    }
  }

  /** Makes `value` the latest record; returns once it is on disk. */
  write(value: T): void {
    const payload = this.codec.encode(value)
    if (payload.byteLength > MAX_RECORD_BYTES) throw new Error(`a record of ${payload.byteLength} bytes is over the slot file's limit`)
    const seq = this.seq + 1
    const frame = Buffer.allocUnsafe(HEAD_BYTES + payload.byteLength + SUM_BYTES)
    frame.writeUInt32BE(MAGIC, 0)
    frame.writeUInt32BE(Math.floor(seq / 2 ** 32), 4)
    frame.writeUInt32BE(seq >>> 0, 8)
    frame.writeUInt32BE(payload.byteLength, 12)
    frame.set(payload, HEAD_BYTES)
    frame.set(sha256(frame.subarray(0, HEAD_BYTES + payload.byteLength)), HEAD_BYTES + payload.byteLength)
    const fd = this.fds[seq % 2] as number
    writeSync(fd, frame, 0, frame.byteLength, 0)
    fsyncSync(fd)
    this.seq = seq
  }

  close(): void {
    for (const fd of this.fds) closeSync(fd)
  }

  private size(i: 0 | 1): number {
    return fstatSync(this.fds[i]).size
  }

  /** The record in slot `i` if it is whole (its checksum holds), else undefined. */
  private slot(i: 0 | 1): { seq: number; payload: Uint8Array } | undefined {
    const fd = this.fds[i]
    const size = this.size(i)
    if (size < HEAD_BYTES + SUM_BYTES) return undefined
    const head = Buffer.alloc(HEAD_BYTES)
    readSync(fd, head, 0, HEAD_BYTES, 0)
    const length = head.readUInt32BE(12)
    if (head.readUInt32BE(0) !== MAGIC || length > MAX_RECORD_BYTES || HEAD_BYTES + length + SUM_BYTES > size) return undefined
    const frame = Buffer.alloc(HEAD_BYTES + length + SUM_BYTES)
    readSync(fd, frame, 0, frame.byteLength, 0)
    const sum = sha256(frame.subarray(0, HEAD_BYTES + length))
    if (!sum.equals(frame.subarray(HEAD_BYTES + length))) return undefined
    return { seq: head.readUInt32BE(4) * 2 ** 32 + head.readUInt32BE(8), payload: frame.subarray(HEAD_BYTES, HEAD_BYTES + length) }
  }

  private corrupt(what: string, cause: unknown): StoreCorruptError {
    return new StoreCorruptError('STORE_CORRUPT', `${this.path}.{0,1} is corrupted: ${what}`, {
      hint: 'restore it from a backup; do not delete it while this validator may have signed at the current height',
      cause
    })
  }
}
