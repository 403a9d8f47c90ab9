import { decodeVoucher, signVoucher, type Voucher, VoucherError, voucherSigned } from '../chain/voucher.ts'
import type { Address, SignatureVerifier, Signer } from '../crypto/index.ts'

/** What the host needs to know of the chain to take a voucher. */
export interface EscrowView {
  /** Tokens left in the payer's escrow, or null if it has none (or it is closing). */
  escrowBalance(payer: Address): bigint | null
  /** What the chain already paid this host from the payer's escrow. */
  redeemed(payer: Address, host: Address): bigint
}

type HeldVoucher = Voucher & { bytes: Uint8Array }

interface PayerEntry {
  latest: HeldVoucher
  /** The latest voucher whose signature was checked (what the host can surely redeem). */
  verified: HeldVoucher | null
  verifiedAt: number
  /** A deferred signature check failed: the payer's vouchers are refused from now on. */
  forged: boolean
}

export interface VoucherBookOptions {
  now?: () => number
  /** A payer's voucher signature is checked at least this often... */
  verifyIntervalMs?: number
  /** ...and whenever its vouchers would otherwise owe more than this beyond the last checked one. */
  maxUnverifiedAmount?: bigint
  /** Payers held at once. */
  maxPayers?: number
}

/**
 * The host's book of vouchers: checks each incoming voucher against the escrow and the latest
 * one it holds from the payer, and keeps the latest per payer for redemption. Bounded: one
 * entry per payer, at most `maxPayers`.
 *
 * Signatures are checked the first time a payer is seen, then at most every `verifyIntervalMs`
 * or when the unchecked part would pass `maxUnverifiedAmount`, and always before redemption.
 * Vouchers are cumulative, so the latest one carries the whole debt: checking every one would
 * cost an Ed25519 verification per request. A payer whose deferred check fails is refused from
 * then on, and the host redeems its last checked voucher: what it risks is bounded by
 * `maxUnverifiedAmount` per payer.
 */
export class VoucherBook {
  private readonly payers = new Map<Address, PayerEntry>()
  private readonly now: () => number
  private readonly verifyIntervalMs: number
  private readonly maxUnverifiedAmount: bigint
  private readonly maxPayers: number

  constructor(
    private readonly host: Address,
    private readonly chainId: string,
    private readonly verifier: SignatureVerifier,
    options: VoucherBookOptions = {}
  ) {
    this.now = options.now ?? Date.now
    this.verifyIntervalMs = options.verifyIntervalMs ?? 0
    this.maxUnverifiedAmount = options.maxUnverifiedAmount ?? 0n
    this.maxPayers = options.maxPayers ?? 100_000
  }

  /**
   * Takes a voucher of at least `required` in total (what the payer owes this host so far), later
   * than the last one held from its payer and within its escrow. Returns the voucher; throws
   * {@link VoucherError} (and changes nothing) otherwise.
   */
  accept(bytes: Uint8Array, required: bigint, chain: EscrowView, decoded?: Voucher): Voucher {
    const v = decoded ?? decodeVoucher(bytes)
    if (v.chainId !== this.chainId) throw new VoucherError('VOUCHER_WRONG_CHAIN', `voucher for chain ${v.chainId}, not ${this.chainId}`)
    if (v.host !== this.host) throw new VoucherError('VOUCHER_WRONG_HOST', `voucher to ${v.host}, not to this host`)
    const entry = this.payers.get(v.payer)
    if (entry?.forged === true) throw new VoucherError('VOUCHER_BAD_SIGNATURE', `payer ${v.payer} sent a forged voucher before`)
    const escrow = chain.escrowBalance(v.payer)
    if (escrow == null) throw new VoucherError('VOUCHER_NO_ESCROW', `payer ${v.payer} has no open escrow`)
    const previous = entry?.latest
    if (previous != null && v.seq <= previous.seq)
      throw new VoucherError('VOUCHER_STALE', `voucher seq ${v.seq} is not after ${previous.seq}`)
    if (previous != null && v.amount < previous.amount) {
      throw new VoucherError('VOUCHER_STALE', `voucher of ${v.amount} is below the ${previous.amount} already signed`)
    }
    if (v.amount < required) throw new VoucherError('VOUCHER_UNDERPAID', `voucher of ${v.amount} does not cover the ${required} owed`)
    const redeemed = chain.redeemed(v.payer, this.host)
    if (v.amount - redeemed > escrow) {
      throw new VoucherError('VOUCHER_OVER_ESCROW', `voucher asks ${v.amount - redeemed} of an escrow holding ${escrow}`)
    }
    if (entry == null && this.payers.size >= this.maxPayers) {
      throw new VoucherError('VOUCHER_BOOK_FULL', `this host holds vouchers of ${this.payers.size} payers; it must redeem first`)
    }
    const held = { ...v, bytes }
    const now = this.now()
    const checkNow =
      entry?.verified == null ||
      now - entry.verifiedAt >= this.verifyIntervalMs ||
      v.amount - entry.verified.amount > this.maxUnverifiedAmount
    if (checkNow && !voucherSigned(v, this.verifier)) {
      throw new VoucherError('VOUCHER_BAD_SIGNATURE', `the voucher is not signed by its payer ${v.payer}`)
    }
    this.payers.delete(v.payer)
    this.payers.set(v.payer, {
      latest: held,
      verified: checkNow ? held : (entry?.verified ?? null),
      verifiedAt: checkNow ? now : (entry?.verifiedAt ?? 0),
      forged: false
    })
    return v
  }

  /** The latest checked voucher of every payer that pays more than already redeemed (unchecked ones are checked now). */
  redeemable(chain: EscrowView): Uint8Array[] {
    const out: Uint8Array[] = []
    for (const entry of this.payers.values()) {
      if (!entry.forged && entry.latest !== entry.verified) {
        if (voucherSigned(entry.latest, this.verifier)) {
          entry.verified = entry.latest
          entry.verifiedAt = this.now()
        } else entry.forged = true
      }
      const v = entry.verified
      if (v != null && v.amount > chain.redeemed(v.payer, this.host)) out.push(v.bytes)
    }
    return out
  }

  /**
   * Takes back a voucher this host held before a restart (see `held`): checked (chain, host,
   * signature) but not against the escrow, which may be closing and still redeemable. Returns
   * false, and keeps nothing, for a voucher that fails a check or is not later than the one held.
   */
  restore(bytes: Uint8Array): boolean {
    let v: Voucher
    try {
      v = decodeVoucher(bytes)
    } catch {
      return false
    }
    if (v.chainId !== this.chainId || v.host !== this.host || !voucherSigned(v, this.verifier)) return false
    const entry = this.payers.get(v.payer)
    if (entry != null && (entry.forged || v.seq <= entry.latest.seq || v.amount < entry.latest.amount)) return false
    if (entry == null && this.payers.size >= this.maxPayers) return false
    const held = { ...v, bytes }
    this.payers.set(v.payer, { latest: held, verified: held, verifiedAt: this.now(), forged: false })
    return true
  }

  /** What the latest voucher held from `payer` pays in total (0 for none, or a forged one's payer). */
  heldAmount(payer: Address): bigint {
    const e = this.payers.get(payer)
    return e === undefined || e.forged ? 0n : e.latest.amount
  }

  /** The latest voucher of every payer not caught forging (what a host keeps across restarts). */
  held(): Uint8Array[] {
    const out: Uint8Array[] = []
    for (const e of this.payers.values()) if (!e.forged) out.push(e.latest.bytes)
    return out
  }

  /** Forgets payers whose latest voucher the chain has paid in full (a forged one's stay refused). */
  prune(chain: EscrowView): void {
    for (const [payer, e] of this.payers) if (!e.forged && chain.redeemed(payer, this.host) >= e.latest.amount) this.payers.delete(payer)
  }
}

/**
 * The payer's side: what it owes each host (the costs it accepted from their receipts) and the
 * next voucher to each, which always covers all of it.
 */
export class VoucherWallet {
  private readonly owed = new Map<Address, { amount: bigint; seq: number }>()

  /** Sequence numbers start from the clock, so vouchers signed after a restart still come after the earlier ones. */
  private readonly firstSeq: number

  constructor(
    private readonly signer: Signer,
    private readonly chainId: string,
    now: () => number = Date.now
  ) {
    this.firstSeq = Math.floor(now())
  }

  /** Adds a cost to what is owed to `host`. */
  charge(host: Address, amount: bigint): void {
    if (amount < 0n) throw new RangeError('a cost is not negative')
    const current = this.owed.get(host) ?? { amount: 0n, seq: this.firstSeq }
    this.owed.set(host, { amount: current.amount + amount, seq: current.seq })
  }

  /** A new voucher to `host` for everything owed to it so far. */
  voucher(host: Address): Uint8Array {
    const current = this.owed.get(host) ?? { amount: 0n, seq: this.firstSeq }
    const next = { amount: current.amount, seq: current.seq + 1 }
    this.owed.set(host, next)
    return signVoucher(this.signer, { chainId: this.chainId, host, amount: next.amount, seq: next.seq })
  }

  /** Total owed to `host` so far. */
  owedTo(host: Address): bigint {
    return this.owed.get(host)?.amount ?? 0n
  }

  /** Hosts owed anything. */
  hosts(): Address[] {
    return [...this.owed.keys()]
  }
}
