import { z } from 'zod'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import type { Address, SignatureVerifier, Signer } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { addressSchema, amountSchema, chainIdSchema, signatureSchema, uintSchema } from './schema.ts'

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

/** Decodes a voucher without checking its signature (see {@link voucherSigned}). */
export function decodeVoucher(bytes: Uint8Array): Voucher {
  try {
    return voucherSchema.parse(decodeCanonical(bytes, MAX_VOUCHER_BYTES)) as Voucher
  } catch (err) {
    throw new VoucherError('VOUCHER_MALFORMED', `not a voucher: ${(err as Error).message.slice(0, 200)}`, { cause: err })
  }
}

/** True if the voucher carries its payer's signature. */
export function voucherSigned(voucher: Voucher, verifier: SignatureVerifier): boolean {
  return verifier.verify(voucher.payer, signingBytes(voucher), voucher.sig)
}

/** Decodes a voucher and checks the payer's signature. */
export function verifyVoucher(bytes: Uint8Array, verifier: SignatureVerifier): Voucher {
  const voucher = decodeVoucher(bytes)
  if (!voucherSigned(voucher, verifier)) {
    throw new VoucherError('VOUCHER_BAD_SIGNATURE', `the voucher is not signed by its payer ${voucher.payer}`)
  }
  return voucher
}
