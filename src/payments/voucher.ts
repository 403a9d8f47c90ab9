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
   * Takes a voucher that must pay at least `price` more than the latest one from its payer.
   * Returns the voucher; throws {@link VoucherError} (and changes nothing) otherwise.
   */
  accept(bytes: Uint8Array, price: bigint, chain: EscrowView): Voucher {
    const v = verifyVoucher(bytes, this.verifier)
    if (v.chainId !== this.chainId) throw new VoucherError('VOUCHER_WRONG_CHAIN', `voucher for chain ${v.chainId}, not ${this.chainId}`)
    if (v.host !== this.host) throw new VoucherError('VOUCHER_WRONG_HOST', `voucher to ${v.host}, not to this host`)
    const escrow = chain.escrowBalance(v.payer)
    if (escrow == null) throw new VoucherError('VOUCHER_NO_ESCROW', `payer ${v.payer} has no open escrow`)
    const redeemed = chain.redeemed(v.payer, this.host)
    const previous = this.latest.get(v.payer)
    const floor = previous != null && previous.amount > redeemed ? previous.amount : redeemed
    if (previous != null && v.seq <= previous.seq)
      throw new VoucherError('VOUCHER_STALE', `voucher seq ${v.seq} is not after ${previous.seq}`)
    if (v.amount < floor + price) {
      throw new VoucherError('VOUCHER_UNDERPAID', `voucher pays ${v.amount - floor} more, the request costs ${price}`)
    }
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
 * The payer's side: the running total it owes each host. Every voucher it signs is final (the
 * host may redeem it), so the total rises as it signs.
 */
export class VoucherWallet {
  private readonly owed = new Map<Address, { amount: bigint; seq: number }>()

  constructor(
    private readonly signer: Signer,
    private readonly chainId: string
  ) {}

  /** A voucher paying `amount` more to `host`. */
  pay(host: Address, amount: bigint): Uint8Array {
    if (amount < 0n) throw new RangeError('a voucher never pays less than the last one')
    const current = this.owed.get(host) ?? { amount: 0n, seq: 0 }
    const next = { amount: current.amount + amount, seq: current.seq + 1 }
    this.owed.set(host, next)
    return signVoucher(this.signer, { chainId: this.chainId, host, amount: next.amount, seq: next.seq })
  }

  /** Total owed to `host` so far. */
  owedTo(host: Address): bigint {
    return this.owed.get(host)?.amount ?? 0n
  }
}
