import { z } from 'zod'
import { addressSchema, amountSchema, chainIdSchema, signatureSchema, uintSchema } from '../chain/schema.ts'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import type { Address, SignatureVerifier, Signer } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'

/**
 * Vouchers: how an edge pays hosts per request without a transaction per request. The payer
 * locks tokens in an escrow on chain; for each request it signs a **cumulative** voucher to the
 * host: everything it owes that host so far, with a sequence number. The host keeps only the
 * latest and redeems it on chain now and then; the chain pays the increase over what it already
 * paid that host from that escrow, so no voucher is ever paid twice.
 */
export interface VoucherBody {
  v: 1
  chainId: string
  payer: Address
  host: Address
  /** Total owed to `host` by `payer` since the escrow opened, in the smallest unit. */
  amount: bigint
  /** Rises by at least one with every voucher the payer signs to this host. */
  seq: number
}

export interface Voucher extends VoucherBody {
  sig: Uint8Array
}

export type VoucherErrorCode =
  | 'VOUCHER_MALFORMED'
  | 'VOUCHER_BAD_SIGNATURE'
  | 'VOUCHER_WRONG_CHAIN'
  | 'VOUCHER_WRONG_HOST'
  | 'VOUCHER_NO_ESCROW'
  | 'VOUCHER_STALE'
  | 'VOUCHER_UNDERPAID'
  | 'VOUCHER_OVER_ESCROW'
  | 'VOUCHER_BOOK_FULL'

export class VoucherError extends LlmeshError<VoucherErrorCode> {}

export const MAX_VOUCHER_BYTES = 512
const VOUCHER_DOMAIN = 'llmesh/voucher/1'

const voucherSchema = z
  .object({
    v: z.literal(1),
    chainId: chainIdSchema,
    payer: addressSchema,
    host: addressSchema,
    amount: amountSchema,
    seq: uintSchema,
    sig: signatureSchema
  })
  .strict()

function signingBytes(b: VoucherBody): Uint8Array {
  return encodeCanonical({ domain: VOUCHER_DOMAIN, v: b.v, chainId: b.chainId, payer: b.payer, host: b.host, amount: b.amount, seq: b.seq })
}

/** Signs a voucher (the signer is the payer) and returns its canonical bytes. */
export function signVoucher(signer: Signer, body: Omit<VoucherBody, 'v' | 'payer'>): Uint8Array {
  const full: VoucherBody = { v: 1, payer: signer.address, ...body }
  return encodeCanonical({ ...full, sig: signer.sign(signingBytes(full)) })
}

/** Decodes a voucher and checks the payer's signature. */
export function verifyVoucher(bytes: Uint8Array, verifier: SignatureVerifier): Voucher {
  let voucher: Voucher
  try {
    voucher = voucherSchema.parse(decodeCanonical(bytes, MAX_VOUCHER_BYTES)) as Voucher
  } catch (err) {
    throw new VoucherError('VOUCHER_MALFORMED', `not a voucher: ${(err as Error).message.slice(0, 200)}`, { cause: err })
  }
  if (!verifier.verify(voucher.payer, signingBytes(voucher), voucher.sig)) {
    throw new VoucherError('VOUCHER_BAD_SIGNATURE', `the voucher is not signed by its payer ${voucher.payer}`)
  }
  return voucher
}

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
