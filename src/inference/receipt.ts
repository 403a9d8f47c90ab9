import { createHash } from 'node:crypto'
import { z } from 'zod'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import { type Address, SignatureVerifier, type Signer } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { INFERENCE_LIMITS } from '../params/index.ts'

/**
 * A receipt: the host's signed statement that it ran one job. It is canonical DAG-CBOR, so
 * anyone holding the bytes can check it with nothing but the host's peer id (which embeds the
 * public key): later layers pay for receipts (vouchers) and check them (proof of compute).
 *
 * `input` is the SHA-256 of the request exactly as the host received it (the canonical bytes of
 * the job, see `encodeJob`); `output` is the SHA-256 of the generated text in UTF-8. The edge
 * checks both against what it sent and received before it hands the receipt on.
 */
export interface ReceiptBody {
  v: 1
  /** The job id the edge chose. */
  job: string
  /** CID of the model that ran. */
  model: string
  host: Address
  /** The peer that asked (the edge). */
  client: Address
  input: Uint8Array
  output: Uint8Array
  promptTokens: number
  completionTokens: number
  finish: 'stop' | 'length' | 'aborted'
  /** Host clock when the job ended, ms since the epoch. */
  time: number
  /** What the job costs the payer, in the smallest unit (0: the model has no price on chain). */
  cost: bigint
  /** Who pays: the payer of the voucher that came with the job, or null for an unpaid job. */
  payer: string | null
}

export interface Receipt extends ReceiptBody {
  /** Ed25519 signature of the host over the canonical encoding of the body (every field but `sig`). */
  sig: Uint8Array
}

export class ReceiptError extends LlmeshError<'RECEIPT_MALFORMED' | 'RECEIPT_BAD_SIGNATURE'> {}

/** Largest receipt accepted: a few hundred bytes in practice. */
export const MAX_RECEIPT_BYTES = 2048

const bytes32 = z.instanceof(Uint8Array).refine((b) => b.byteLength === 32, { message: 'must be 32 bytes' })
const count = z
  .number()
  .int()
  .min(0)
  .max(2 ** 32)

const ReceiptSchema = z
  .object({
    v: z.literal(1),
    job: z.string().min(1).max(128),
    model: z.string().min(1).max(INFERENCE_LIMITS.maxModelIdBytes),
    host: z.string().min(1).max(64),
    client: z.string().min(1).max(64),
    input: bytes32,
    output: bytes32,
    promptTokens: count,
    completionTokens: count,
    finish: z.enum(['stop', 'length', 'aborted']),
    time: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    cost: z
      .union([
        z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
        z
          .bigint()
          .min(0n)
          .max(2n ** 64n - 1n)
      ])
      .transform((v) => BigInt(v)),
    payer: z.string().min(1).max(64).nullable(),
    sig: z.instanceof(Uint8Array).refine((b) => b.byteLength === 64, { message: 'must be 64 bytes' })
  })
  .strict()

export function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest())
}

function bodyBytes(body: ReceiptBody): Uint8Array {
  const { v, job, model, host, client, input, output, promptTokens, completionTokens, finish, time, cost, payer } = body
  return encodeCanonical({ v, job, model, host, client, input, output, promptTokens, completionTokens, finish, time, cost, payer })
}

/** Signs a receipt with the host's key (`body.host` must be the signer's address); returns its canonical bytes. */
export function signReceipt(signer: Signer, body: ReceiptBody): Uint8Array {
  if (body.host !== signer.address) throw new Error('a receipt is signed by the host it names')
  return encodeCanonical({ ...body, sig: signer.sign(bodyBytes(body)) })
}

/** Decodes a receipt and checks its signature; throws {@link ReceiptError} otherwise. */
export function verifyReceipt(bytes: Uint8Array, verifier: SignatureVerifier = new SignatureVerifier()): Receipt {
  let receipt: Receipt
  try {
    receipt = ReceiptSchema.parse(decodeCanonical(bytes, MAX_RECEIPT_BYTES)) as Receipt
  } catch (err) {
    throw new ReceiptError('RECEIPT_MALFORMED', `not a receipt: ${(err as Error).message.slice(0, 200)}`, { cause: err })
  }
  if (!verifier.verify(receipt.host, bodyBytes(receipt), receipt.sig)) {
    throw new ReceiptError('RECEIPT_BAD_SIGNATURE', `the receipt is not signed by its host ${receipt.host}`)
  }
  return receipt
}

/** A receipt as JSON (hashes and signature in hex), for the HTTP API. */
export function receiptJson(r: Receipt): Record<string, string | number | null> {
  return {
    v: r.v,
    job: r.job,
    model: r.model,
    host: r.host,
    client: r.client,
    input: Buffer.from(r.input).toString('hex'),
    output: Buffer.from(r.output).toString('hex'),
    promptTokens: r.promptTokens,
    completionTokens: r.completionTokens,
    finish: r.finish,
    time: r.time,
    cost: r.cost.toString(),
    payer: r.payer,
    sig: Buffer.from(r.sig).toString('hex')
  }
}
