import { CborReader, WireError } from '../codec/wire.ts'
import type { SignedTx } from './tx.ts'

/*
 * A hand-written reader for the wire form of the commonest transaction, the transfer, and the
 * signed bytes of any transaction taken from its wire bytes. Both are shortcuts of the generic
 * path (DAG-CBOR decode, re-encode to check canonical form, schema check; re-encode to sign):
 * they accept only the one canonical encoding of a well-formed transfer and return exactly what
 * the generic path returns for it, and give up (null) on anything else, which then goes the
 * generic way with its typed errors. A property test holds the two paths equal.
 *
 * Canonical DAG-CBOR sorts map keys by length, then bytewise, so a signed transaction is always
 *   {fee, sig, body, from, nonce, chainId}
 * and the bytes it signs, `{tx: {fee, body, from, nonce, chainId}, domain: 'llmesh/tx/1'}`, are the
 * wire bytes with the `sig` entry cut out, a new head and the domain entry after.
 */

const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0))
/** `a6` (map of 6), `63 'fee'`. */
const HEAD = Uint8Array.from([0xa6, 0x63, ...ascii('fee')])
/** `63 'sig' 58 40`: the key and the header of 64 bytes. */
const SIG_HEAD = Uint8Array.from([0x63, ...ascii('sig'), 0x58, 0x40])
/** `64 'body' a3 62 'to'`. */
const BODY_HEAD = Uint8Array.from([0x64, ...ascii('body'), 0xa3, 0x62, ...ascii('to')])
/** `64 'type' 68 'transfer' 66 'amount'`. */
const TRANSFER_TYPE = Uint8Array.from([0x64, ...ascii('type'), 0x68, ...ascii('transfer'), 0x66, ...ascii('amount')])
const FROM_KEY = Uint8Array.from([0x64, ...ascii('from')])
const NONCE_KEY = Uint8Array.from([0x65, ...ascii('nonce')])
const CHAIN_ID_KEY = Uint8Array.from([0x67, ...ascii('chainId')])
/** `a2 62 'tx' a5`: the head of the signed bytes. */
const SIGN_HEAD = Uint8Array.from([0xa2, 0x62, ...ascii('tx'), 0xa5])
/** `66 'domain' 6b 'llmesh/tx/1'`: the tail of the signed bytes. */
const SIGN_TAIL = Uint8Array.from([0x66, ...ascii('domain'), 0x6b, ...ascii('llmesh/tx/1')])
const SIG_BYTES = 64
/** Longest chain id and address, in bytes (the schema's limit is 64 characters, so never more). */
const MAX_TEXT = 64

/** A text of 1 to MAX_TEXT bytes (what the schema takes); throws WireError otherwise. */
function text(r: CborReader): string {
  const s = r.text(MAX_TEXT)
  if (s.length === 0) r.fail('empty text')
  return s
}

/**
 * Reads the canonical wire bytes of a signed transfer; null if the bytes are anything else (the
 * caller then takes the generic path, which accepts or refuses them with a reason). Does not
 * check the size limit, the signature or the state.
 */
export function readTransferWire(bytes: Uint8Array): SignedTx | null {
  const r = new CborReader(bytes)
  try {
    if (!r.tryKey(HEAD)) return null
    const fee = r.bigUint()
    if (!r.tryKey(SIG_HEAD) || r.pos + SIG_BYTES > bytes.length) return null
    // a copy, as a plain Uint8Array (as the generic decoder gives), of just these 64 bytes
    const sig = new Uint8Array(bytes.subarray(r.pos, r.pos + SIG_BYTES))
    r.pos += SIG_BYTES
    if (!r.tryKey(BODY_HEAD)) return null
    const to = text(r)
    if (!r.tryKey(TRANSFER_TYPE)) return null
    const amount = r.bigUint()
    if (!r.tryKey(FROM_KEY)) return null
    const from = text(r)
    if (!r.tryKey(NONCE_KEY)) return null
    const nonce = r.uint(Number.MAX_SAFE_INTEGER)
    if (!r.tryKey(CHAIN_ID_KEY)) return null
    const chainId = text(r)
    if (!r.done) return null
    return { chainId, from, nonce, fee, body: { type: 'transfer', to, amount }, sig }
  } catch (err) {
    if (err instanceof WireError) return null
    throw err
  }
}

/**
 * The bytes the sender signed (`txSignBytes`), cut from the canonical wire bytes of a signed
 * transaction of any type: the `sig` entry removed, the head and domain entry of the signed form
 * around the rest. Only for bytes that decoded as a transaction (so they are canonical); null if
 * the head is not the expected one.
 */
export function signBytesFromWire(bytes: Uint8Array): Uint8Array | null {
  const r = new CborReader(bytes)
  if (!r.tryKey(HEAD)) return null
  try {
    r.bigUint()
  } catch (err) {
    if (err instanceof WireError) return null
    throw err
  }
  const feeEnd = r.pos
  if (!r.tryKey(SIG_HEAD) || r.pos + SIG_BYTES > bytes.length) return null
  const sigEnd = r.pos + SIG_BYTES
  const out = new Uint8Array(SIGN_HEAD.length + (feeEnd - 1) + (bytes.length - sigEnd) + SIGN_TAIL.length)
  let o = 0
  out.set(SIGN_HEAD, o)
  o += SIGN_HEAD.length
  out.set(bytes.subarray(1, feeEnd), o)
  o += feeEnd - 1
  out.set(bytes.subarray(sigEnd), o)
  o += bytes.length - sigEnd
  out.set(SIGN_TAIL, o)
  return out
}
