import { signVoucher, type Voucher, VoucherError, verifyVoucher } from '../chain/voucher.ts'
import type { Address, SignatureVerifier, Signer } from '../crypto/index.ts'

/** What the host needs to know of the chain to take a voucher. */
export interface EscrowView {
  /** Tokens left in the payer's escrow, or null if it has none (or it is closing). */
  escrowBalance(payer: Address): bigint | null
  /** What the chain already paid this host from the payer's escrow. */
  redeemed(payer: Address, host: Address): bigint
}

/**
 * The host's book of vouchers: checks each incoming voucher against the escrow and the latest
 * one it holds from the payer, and keeps the latest per payer for redemption. Bounded: one
 * entry per payer, at most `maxPayers`.
 */
export class VoucherBook {
  private readonly latest = new Map<Address, Voucher & { bytes: Uint8Array }>()

  constructor(
    private readonly host: Address,
    private readonly chainId: string,
    private readonly verifier: SignatureVerifier,
    private readonly maxPayers = 100_000
  ) {}

  /**
   * Takes a voucher of at least `required` in total (what the payer owes this host so far), later
   * than the last one held from its payer and within its escrow. Returns the voucher; throws
   * {@link VoucherError} (and changes nothing) otherwise.
   */
  accept(bytes: Uint8Array, required: bigint, chain: EscrowView): Voucher {
    const v = verifyVoucher(bytes, this.verifier)
    if (v.chainId !== this.chainId) throw new VoucherError('VOUCHER_WRONG_CHAIN', `voucher for chain ${v.chainId}, not ${this.chainId}`)
    if (v.host !== this.host) throw new VoucherError('VOUCHER_WRONG_HOST', `voucher to ${v.host}, not to this host`)
    const escrow = chain.escrowBalance(v.payer)
    if (escrow == null) throw new VoucherError('VOUCHER_NO_ESCROW', `payer ${v.payer} has no open escrow`)
    const previous = this.latest.get(v.payer)
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
    if (previous == null && this.latest.size >= this.maxPayers) {
      throw new VoucherError('VOUCHER_BOOK_FULL', `this host holds vouchers of ${this.latest.size} payers; it must redeem first`)
    }
    this.latest.delete(v.payer)
    this.latest.set(v.payer, { ...v, bytes })
    return v
  }

  /** The latest voucher of every payer that is worth redeeming (pays more than already redeemed). */
  redeemable(chain: EscrowView): Uint8Array[] {
    return [...this.latest.values()].filter((v) => v.amount > chain.redeemed(v.payer, this.host)).map((v) => v.bytes)
  }

  /** Forgets payers whose latest voucher the chain has paid in full. */
  prune(chain: EscrowView): void {
    for (const [payer, v] of this.latest) if (chain.redeemed(payer, this.host) >= v.amount) this.latest.delete(payer)
  }
}

/**
 * The payer's side: what it owes each host (the costs it accepted from their receipts) and the
 * next voucher to each, which always covers all of it.
 */
export class VoucherWallet {
  private readonly owed = new Map<Address, { amount: bigint; seq: number }>()

  constructor(
    private readonly signer: Signer,
    private readonly chainId: string
  ) {}

  /** Adds a cost to what is owed to `host`. */
  charge(host: Address, amount: bigint): void {
    if (amount < 0n) throw new RangeError('a cost is not negative')
    const current = this.owed.get(host) ?? { amount: 0n, seq: 0 }
    this.owed.set(host, { amount: current.amount + amount, seq: current.seq })
  }

  /** A new voucher to `host` for everything owed to it so far. */
  voucher(host: Address): Uint8Array {
    const current = this.owed.get(host) ?? { amount: 0n, seq: 0 }
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
