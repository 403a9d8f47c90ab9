import { hash } from 'node:crypto'
import { z } from 'zod'
import { DecodeError, decodeCanonical, encodeCanonical } from '../codec/index.ts'
import type { Address, SignatureVerifier, Signer } from '../crypto/index.ts'
import { STAKE_ROLES, type StakeRole } from '../params/index.ts'
import { addressSchema, amountSchema, chainIdSchema, cidSchema, signatureSchema, uintSchema } from './schema.ts'
import { GOV_CHOICES, type GovChoice } from './state/types.ts'
import { readTransferWire } from './tx-wire.ts'
import { type SignedVote, signedVoteSchema } from './vote.ts'
import { MAX_VOUCHER_BYTES } from './voucher.ts'

export type TxBody =
  | { type: 'transfer'; to: Address; amount: bigint }
  | { type: 'stake'; role: StakeRole; amount: bigint }
  | { type: 'unstake'; role: StakeRole; amount: bigint }
  | { type: 'register-model'; name: string; cid: string; parent: string | null; parameters: bigint }
  | { type: 'evidence'; a: SignedVote; b: SignedVote }
  | { type: 'escrow-open'; amount: bigint }
  | { type: 'escrow-topup'; amount: bigint }
  | { type: 'escrow-close' }
  | { type: 'redeem'; vouchers: Uint8Array[]; served: Array<{ model: string; tokens: bigint }> }
  | { type: 'gov-propose'; changes: Array<[string, string]>; applyHeight: number }
  | { type: 'gov-vote'; proposal: number; choice: GovChoice }

/** Most vouchers one `redeem` carries (the transaction size limit usually binds first). */
export const MAX_REDEEM_VOUCHERS = 1_024
/** Most models one `redeem` reports served load for. */
export const MAX_REDEEM_MODELS = 64
/** Most parameter changes one `gov-propose` carries. */
export const MAX_GOV_CHANGES = 16
/** A parameter value in a proposal: a non-negative integer as a canonical decimal string (at most 20 digits). */
export const paramValueSchema = z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'a non-negative integer as a decimal string')

export type TxType = TxBody['type']

export interface UnsignedTx {
  chainId: string
  from: Address
  /** The sender's transaction count so far: the first transaction has nonce 0. */
  nonce: number
  fee: bigint
  body: TxBody
}

export interface SignedTx extends UnsignedTx {
  sig: Uint8Array
}

const bodySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('transfer'), to: addressSchema, amount: amountSchema }).strict(),
  z.object({ type: z.literal('stake'), role: z.enum(STAKE_ROLES), amount: amountSchema }).strict(),
  z.object({ type: z.literal('unstake'), role: z.enum(STAKE_ROLES), amount: amountSchema }).strict(),
  z
    .object({
      type: z.literal('register-model'),
      name: z
        .string()
        .min(1)
        .max(128)
        .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'letters, digits and . _ : / -'),
      cid: cidSchema,
      parent: cidSchema.nullable(),
      parameters: amountSchema
    })
    .strict(),
  z.object({ type: z.literal('evidence'), a: signedVoteSchema, b: signedVoteSchema }).strict(),
  z.object({ type: z.literal('escrow-open'), amount: amountSchema }).strict(),
  z.object({ type: z.literal('escrow-topup'), amount: amountSchema }).strict(),
  z.object({ type: z.literal('escrow-close') }).strict(),
  z
    .object({
      type: z.literal('redeem'),
      vouchers: z
        .array(z.instanceof(Uint8Array).refine((b) => b.byteLength <= MAX_VOUCHER_BYTES, 'a voucher is at most 512 bytes'))
        .min(1)
        .max(MAX_REDEEM_VOUCHERS),
      served: z.array(z.object({ model: cidSchema, tokens: amountSchema }).strict()).max(MAX_REDEEM_MODELS)
    })
    .strict(),
  z
    .object({
      type: z.literal('gov-propose'),
      changes: z
        .array(z.tuple([z.string().min(1).max(64), paramValueSchema]))
        .min(1)
        .max(MAX_GOV_CHANGES),
      applyHeight: uintSchema
    })
    .strict(),
  z.object({ type: z.literal('gov-vote'), proposal: uintSchema, choice: z.enum(GOV_CHOICES) }).strict()
])

export const signedTxSchema = z
  .object({ chainId: chainIdSchema, from: addressSchema, nonce: uintSchema, fee: amountSchema, body: bodySchema, sig: signatureSchema })
  .strict()

function unsigned(tx: UnsignedTx): UnsignedTx {
  return { chainId: tx.chainId, from: tx.from, nonce: tx.nonce, fee: tx.fee, body: tx.body }
}

/** The bytes a sender signs: the transaction without its signature, domain-separated. */
export function txSignBytes(tx: UnsignedTx): Uint8Array {
  return encodeCanonical({ domain: 'llmesh/tx/1', tx: unsigned(tx) })
}

export function signTx(tx: UnsignedTx, signer: Signer): SignedTx {
  if (signer.address !== tx.from) throw new Error('signer is not the transaction sender')
  return { ...unsigned(tx), sig: signer.sign(txSignBytes(tx)) }
}

/**
 * Whether the sender's signature verifies. `signBytes` may be passed when the caller already has
 * them (cut from the wire bytes `tx` was decoded from: see `signBytesFromWire`).
 */
export function verifyTxSignature(tx: SignedTx, verifier: SignatureVerifier, signBytes: Uint8Array = txSignBytes(tx)): boolean {
  return verifier.verify(tx.from, signBytes, tx.sig)
}

/** Canonical wire bytes of a signed transaction. */
export function encodeTx(tx: SignedTx): Uint8Array {
  return encodeCanonical({ ...unsigned(tx), sig: tx.sig })
}

/** The transaction's id: SHA-256 of its wire bytes, hex. */
export function txHash(bytes: Uint8Array): string {
  // node:crypto's one-shot hash: the same SHA-256, without a Hash object per call (~1 µs, not ~3)
  return hash('sha256', bytes, 'hex')
}

/**
 * Decodes wire bytes into a signed transaction: at most `maxBytes`, canonical DAG-CBOR, every
 * field of the right type and range. Does not check the signature or the state.
 */
export function decodeTx(bytes: Uint8Array, maxBytes: number): SignedTx {
  if (bytes.byteLength > maxBytes) {
    throw new DecodeError('DECODE_TOO_LARGE', `message of ${bytes.byteLength} bytes is over the ${maxBytes}-byte limit`)
  }
  // the hot path: a transfer in its canonical form is read by hand (same result, a fraction of the
  // work); anything else, malformed input included, takes the generic path below
  const transfer = readTransferWire(bytes)
  if (transfer !== null) return transfer
  const value = decodeCanonical(bytes, maxBytes)
  const parsed = signedTxSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new DecodeError('DECODE_MALFORMED', `not a transaction: ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  return parsed.data as SignedTx
}

/**
 * Several transactions' wire bytes in one message: nodes gossip transactions in batches, so the
 * per-message cost of the network (signature, encryption, framing) is paid once per batch.
 */
export function encodeTxBatch(txs: readonly Uint8Array[]): Uint8Array {
  return encodeCanonical(txs)
}

/**
 * Decodes a batch: at most `maxBytes`, canonical DAG-CBOR, a non-empty list of at most `maxTxs`
 * byte strings. Each transaction is decoded and checked on its own afterwards. Read by hand (a
 * list of byte strings has one canonical form: shortest headers, definite lengths), as every
 * node reads every batch.
 */
export function decodeTxBatch(bytes: Uint8Array, limits: { maxTxs: number; maxBytes: number }): Uint8Array[] {
  if (bytes.byteLength > limits.maxBytes) {
    throw new DecodeError('DECODE_TOO_LARGE', `message of ${bytes.byteLength} bytes is over the ${limits.maxBytes}-byte limit`)
  }
  const malformed = (why: string) => new DecodeError('DECODE_MALFORMED', `not a transaction batch: ${why}`)
  let pos = 0
  /** A CBOR head of major type `major`: its argument, in shortest form, at most 2^32 - 1. */
  const head = (major: number): number => {
    const first = bytes[pos]
    if (first === undefined) throw malformed('truncated')
    if (first >> 5 !== major)
      throw malformed(major === 4 ? `a list of 1 to ${limits.maxTxs} transactions expected` : 'every entry must be bytes')
    const info = first & 0x1f
    if (info < 24) {
      pos += 1
      return info
    }
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : 0
    if (size === 0) throw malformed('length not in a definite, shortest form')
    if (pos + 1 + size > bytes.length) throw malformed('truncated')
    let n = 0
    for (let i = 1; i <= size; i++) n = n * 256 + (bytes[pos + i] as number)
    if (n < (size === 1 ? 24 : size === 2 ? 0x100 : 0x1_0000)) throw malformed('length not in its shortest form')
    pos += 1 + size
    return n
  }
  const count = head(4)
  if (count === 0 || count > limits.maxTxs) throw malformed(`a list of 1 to ${limits.maxTxs} transactions expected`)
  const txs: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    const len = head(2)
    if (pos + len > bytes.length) throw malformed('truncated')
    txs.push(new Uint8Array(bytes.subarray(pos, pos + len)))
    pos += len
  }
  if (pos !== bytes.length) throw malformed('bytes after the list')
  return txs
}
