import { DecodeError } from '../codec/index.ts'
import type { SignatureVerifier } from '../crypto/index.ts'
import { decodeTx, type SignedTx, txHash, verifyTxSignature } from './tx.ts'
import { signBytesFromWire } from './tx-wire.ts'

/** A transaction decoded from its wire bytes, with its id (SHA-256 of those bytes). */
export interface DecodedTx {
  readonly hash: string
  readonly tx: SignedTx
}

/**
 * Remembers, by transaction id, what decoding a transaction and checking its signature found, so
 * a node does that work once per transaction instead of at mempool entry, again when it builds
 * or checks a block, and again when the mempool is re-checked after each commit. Decoding and
 * signature checking are pure functions of the wire bytes, so a remembered result is exactly what
 * doing the work again would give: every check of the state machine still runs in full.
 * Bounded: the oldest entries are forgotten first. Holds no global state; a node owns one.
 */
export class TxCache {
  private readonly maxEntries: number
  private readonly entries = new Map<string, SignedTx>()
  /**
   * Every transaction object this cache decoded, with its signature result once checked (null
   * before). Only these objects are remembered: the cache froze them, so they cannot change.
   */
  private readonly signatures = new WeakMap<SignedTx, boolean | null>()
  /** The signed bytes of each transaction decoded here, cut from its wire bytes (not re-encoded). */
  private readonly signBytes = new WeakMap<SignedTx, Uint8Array>()

  /** Checks the signatures of the transactions this cache decoded, if given (else the caller's verifier does). */
  private readonly verifier: SignatureVerifier | undefined

  /**
   * @param verifier the verifier for the signatures of transactions this cache decoded. A node
   * passes one without a memory of good signatures (`new SignatureVerifier()`): this cache
   * already remembers each result, and its own memory would cost a hash per check for nothing.
   */
  constructor(maxEntries: number, verifier?: SignatureVerifier) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new Error('a transaction cache holds at least one entry')
    this.maxEntries = maxEntries
    this.verifier = verifier
  }

  get size(): number {
    return this.entries.size
  }

  /**
   * `decodeTx` with memory: the size limit is checked every time, a remembered decoding is
   * returned for bytes seen before. Throws DecodeError as `decodeTx` does. `hash` may be passed
   * when the caller already computed the id of `raw`.
   */
  decode(raw: Uint8Array, maxBytes: number, hash: string = txHash(raw)): DecodedTx {
    if (raw.byteLength > maxBytes) {
      throw new DecodeError('DECODE_TOO_LARGE', `message of ${raw.byteLength} bytes is over the ${maxBytes}-byte limit`)
    }
    const known = this.entries.get(hash)
    if (known != null) return { hash, tx: known }
    const tx = decodeTx(raw, maxBytes)
    // the decoded object stands for these exact bytes from now on: nobody may change it
    freezeDeep(tx)
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value
      if (oldest != null) this.entries.delete(oldest)
    }
    this.entries.set(hash, tx)
    this.signatures.set(tx, null)
    const signed = signBytesFromWire(raw)
    if (signed !== null) this.signBytes.set(tx, signed)
    return { hash, tx }
  }

  /**
   * Whether the signature of `tx` verifies. Remembered for transactions this cache decoded;
   * checked every time for any other object.
   */
  signatureValid(tx: SignedTx, verifier: SignatureVerifier): boolean {
    const known = this.signatures.get(tx)
    if (known === undefined) return verifyTxSignature(tx, verifier)
    if (known !== null) return known
    const ok = verifyTxSignature(tx, this.verifier ?? verifier, this.signBytes.get(tx))
    this.signatures.set(tx, ok)
    this.signBytes.delete(tx)
    return ok
  }
}

/** Freezes an object and every plain object inside it (byte arrays cannot be frozen). */
function freezeDeep(value: object): void {
  for (const v of Object.values(value)) if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) freezeDeep(v)
  Object.freeze(value)
}
