import { DecodeError } from '../codec/index.ts'
import type { SignatureVerifier } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { applyTxToDraft } from './state/apply-tx.ts'
import { StateDraft } from './state/draft.ts'
import { type ChainState, TxError } from './state/types.ts'
import { type SignedTx, txHash } from './tx.ts'
import { TxCache } from './tx-cache.ts'

export class MempoolError extends LlmeshError<'MEMPOOL_FULL'> {}

export interface MempoolLimits {
  maxTxs: number
  maxBytes: number
}

export type AddResult =
  | { ok: true; hash: string; duplicate: boolean }
  | { ok: false; hash: string | null; error: TxError | DecodeError | MempoolError }

interface Waiting {
  raw: Uint8Array
  tx: SignedTx
}

/**
 * Transactions waiting for a block. Each is checked on arrival against the committed state plus
 * every transaction already waiting (so a sender's transactions queue in nonce order, and one
 * that could never apply is refused with its reason). Bounded in count and bytes. No I/O.
 * Decoded transactions and their signature results come from a `TxCache` shared with block
 * building and checking, so a transaction's signature is verified once per node.
 */
export class Mempool {
  private readonly limits: MempoolLimits
  private readonly verifier: SignatureVerifier
  private readonly cache: TxCache
  private readonly txs = new Map<string, Waiting>()
  private bytes = 0
  private base: ChainState
  private pending: StateDraft

  constructor(state: ChainState, limits: MempoolLimits, verifier: SignatureVerifier, txCache?: TxCache) {
    this.limits = limits
    this.verifier = verifier
    this.cache = txCache ?? new TxCache(Math.max(1, limits.maxTxs))
    this.base = state
    this.pending = new StateDraft(state)
  }

  get size(): number {
    return this.txs.size
  }

  has(hash: string): boolean {
    return this.txs.has(hash)
  }

  /** Checks and adds one transaction (wire bytes). Adding the same one twice is harmless. */
  add(raw: Uint8Array): AddResult {
    let hash: string | null = null
    try {
      const id = txHash(raw)
      if (this.txs.has(id)) return { ok: true, hash: id, duplicate: true }
      const { tx } = this.cache.decode(raw, this.base.params.maxTxBytes, id)
      hash = id
      if (this.txs.size >= this.limits.maxTxs || this.bytes + raw.byteLength > this.limits.maxBytes) {
        throw new MempoolError('MEMPOOL_FULL', `the mempool holds ${this.txs.size} transactions, its limit`, {
          hint: 'retry after the next block'
        })
      }
      applyTxToDraft(this.pending, tx, { height: this.base.height + 1, verifier: this.verifier, txCache: this.cache })
      this.txs.set(hash, { raw, tx })
      this.bytes += raw.byteLength
      return { ok: true, hash, duplicate: false }
    } catch (err) {
      if (err instanceof TxError || err instanceof DecodeError || err instanceof MempoolError) return { ok: false, hash, error: err }
      throw err
    }
  }

  /** Waiting transactions in the order to try them. */
  *candidates(): Iterable<Uint8Array> {
    for (const w of this.txs.values()) yield w.raw
  }

  /**
   * After a block: drops the transactions it included and re-checks the rest against the new
   * state; returns the hashes of those that can no longer apply, with the reason. `ids`: the
   * included transactions' ids, if the caller has them.
   */
  onCommit(
    included: Uint8Array[],
    state: ChainState,
    ids: readonly string[] = included.map(txHash)
  ): Array<{ hash: string; error: TxError | DecodeError }> {
    for (const id of ids) this.txs.delete(id)
    this.base = state
    this.pending = new StateDraft(state)
    const dropped: Array<{ hash: string; error: TxError | DecodeError }> = []
    this.bytes = 0
    const ctx = { height: state.height + 1, verifier: this.verifier, txCache: this.cache }
    for (const [hash, { raw, tx }] of [...this.txs]) {
      try {
        if (raw.byteLength > state.params.maxTxBytes) {
          throw new DecodeError(
            'DECODE_TOO_LARGE',
            `transaction of ${raw.byteLength} bytes is over the ${state.params.maxTxBytes}-byte limit`
          )
        }
        applyTxToDraft(this.pending, tx, ctx)
        this.bytes += raw.byteLength
      } catch (err) {
        if (!(err instanceof TxError || err instanceof DecodeError)) throw err
        this.txs.delete(hash)
        dropped.push({ hash, error: err })
      }
    }
    return dropped
  }

  /** The nonce the next transaction of `address` must carry, counting those waiting here. */
  nextNonce(address: string): number {
    return this.pending.account(address).nonce
  }
}
