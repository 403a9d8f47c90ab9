import { CID } from 'multiformats/cid'
import { z } from 'zod'
import { MAX_AMOUNT } from '../params/index.ts'

/** Amounts are unsigned 64-bit integers; DAG-CBOR decodes small ones as numbers, so both are taken. */
export const amountSchema = z
  .union([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.bigint().min(0n).max(MAX_AMOUNT)])
  .transform((v) => BigInt(v))

export const uintSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
export const addressSchema = z.string().min(1).max(64)
export const hashSchema = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 hash as 64 lowercase hex digits')
export const signatureSchema = z.instanceof(Uint8Array).refine((b) => b.byteLength === 64, 'an Ed25519 signature is 64 bytes')
export const chainIdSchema = z.string().min(1).max(64)
export const cidSchema = z
  .string()
  .min(1)
  .max(128)
  .refine((s) => {
    try {
      return CID.parse(s).toString() === s
    } catch {
      return false
    }
  }, 'a CID in its canonical string form')
