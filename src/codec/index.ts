/**
 * Codec: the canonical bytes of every object LLMESH signs, hashes or sends. DAG-CBOR gives one
 * encoding per value; decoders here refuse input that is oversized or not in that encoding.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { LlmeshError } from '../errors/index.ts'

export type DecodeErrorCode = 'DECODE_TOO_LARGE' | 'DECODE_MALFORMED' | 'DECODE_NOT_CANONICAL'

export class DecodeError extends LlmeshError<DecodeErrorCode> {}

/** Canonical DAG-CBOR bytes of `value`. */
export function encodeCanonical(value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/**
 * Decodes DAG-CBOR of at most `maxBytes`, and only if re-encoding gives the same bytes, so two
 * different byte strings never decode to one value (no malleable signatures or hashes).
 */
export function decodeCanonical(bytes: Uint8Array, maxBytes: number): unknown {
  if (bytes.byteLength > maxBytes) {
    throw new DecodeError('DECODE_TOO_LARGE', `message of ${bytes.byteLength} bytes is over the ${maxBytes}-byte limit`)
  }
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (err) {
    throw new DecodeError('DECODE_MALFORMED', `not DAG-CBOR: ${(err as Error).message}`, { cause: err })
  }
  if (!sameBytes(dagCbor.encode(value), bytes)) {
    throw new DecodeError('DECODE_NOT_CANONICAL', 'DAG-CBOR is not in canonical form')
  }
  return value
}

/** Byte equality through the native compare (a proposal's block is megabytes; a JS loop is slow). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}
