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
/** Longest chain id and address (the schema's limit, in characters; only ASCII takes this path). */
const MAX_TEXT = 64

/** A cursor over the bytes; every read checks bounds and minimal encoding, and fails with null. */
class Reader {
  pos = 0
  constructor(readonly bytes: Uint8Array) {}

  expect(lit: Uint8Array): boolean {
    const b = this.bytes
    if (this.pos + lit.length > b.length) return false
    for (let i = 0; i < lit.length; i++) if (b[this.pos + i] !== lit[i]) return false
    this.pos += lit.length
    return true
  }

  /** An unsigned integer (major type 0) in its shortest form, as a bigint; null if not one. */
  uint(): bigint | null {
    const b = this.bytes
    const first = b[this.pos]
    if (first === undefined || first >> 5 !== 0) return null
    const info = first & 0x1f
    if (info < 24) {
      this.pos += 1
      return BigInt(info)
    }
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0
    if (size === 0 || this.pos + 1 + size > b.length) return null
    let v = 0n
    if (size <= 4) {
      let n = 0
      for (let i = 1; i <= size; i++) n = n * 256 + (b[this.pos + i] as number)
      v = BigInt(n)
    } else {
      let hi = 0
      let lo = 0
      for (let i = 1; i <= 4; i++) hi = hi * 256 + (b[this.pos + i] as number)
      for (let i = 5; i <= 8; i++) lo = lo * 256 + (b[this.pos + i] as number)
      v = (BigInt(hi) << 32n) | BigInt(lo)
    }
    // shortest form only: a value that fits a smaller size must use it
    const least = size === 1 ? 24n : size === 2 ? 0x100n : size === 4 ? 0x1_0000n : 0x1_0000_0000n
    if (v < least) return null
    this.pos += 1 + size
    return v
  }

  /** A text string (major type 3) of 1 to MAX_TEXT ASCII characters; null otherwise. */
  asciiText(): string | null {
    const b = this.bytes
    const first = b[this.pos]
    if (first === undefined) return null
    let len: number
    let start: number
    if (first >= 0x61 && first <= 0x77) {
      len = first - 0x60
      start = this.pos + 1
    } else if (first === 0x78) {
      len = b[this.pos + 1] ?? 0
      start = this.pos + 2
      if (len < 24) return null // not the shortest form
    } else return null
    if (len > MAX_TEXT || start + len > b.length) return null
    for (let i = start; i < start + len; i++) if ((b[i] as number) >= 0x80) return null
    this.pos = start + len
    return String.fromCharCode.apply(null, b.subarray(start, start + len) as unknown as number[])
  }
}

/**
 * Reads the canonical wire bytes of a signed transfer; null if the bytes are anything else (the
 * caller then takes the generic path, which accepts or refuses them with a reason). Does not
 * check the size limit, the signature or the state.
 */
export function readTransferWire(bytes: Uint8Array): SignedTx | null {
  const r = new Reader(bytes)
  if (!r.expect(HEAD)) return null
  const fee = r.uint()
  if (fee === null || !r.expect(SIG_HEAD) || r.pos + SIG_BYTES > bytes.length) return null
  // a copy, as a plain Uint8Array (as the generic decoder gives), of just these 64 bytes
  const sig = new Uint8Array(bytes.subarray(r.pos, r.pos + SIG_BYTES))
  r.pos += SIG_BYTES
  if (!r.expect(BODY_HEAD)) return null
  const to = r.asciiText()
  if (to === null || !r.expect(TRANSFER_TYPE)) return null
  const amount = r.uint()
  if (amount === null || !r.expect(FROM_KEY)) return null
  const from = r.asciiText()
  if (from === null || !r.expect(NONCE_KEY)) return null
  const nonce = r.uint()
  if (nonce === null || nonce > BigInt(Number.MAX_SAFE_INTEGER) || !r.expect(CHAIN_ID_KEY)) return null
  const chainId = r.asciiText()
  if (chainId === null || r.pos !== bytes.length) return null
  return { chainId, from, nonce: Number(nonce), fee, body: { type: 'transfer', to, amount }, sig }
}

/**
 * The bytes the sender signed (`txSignBytes`), cut from the canonical wire bytes of a signed
 * transaction of any type: the `sig` entry removed, the head and domain entry of the signed form
 * around the rest. Only for bytes that decoded as a transaction (so they are canonical); null if
 * the head is not the expected one.
 */
export function signBytesFromWire(bytes: Uint8Array): Uint8Array | null {
  const r = new Reader(bytes)
  if (!r.expect(HEAD) || r.uint() === null) return null
  const feeEnd = r.pos
  if (!r.expect(SIG_HEAD) || r.pos + SIG_BYTES > bytes.length) return null
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
