import { z } from 'zod'
import { DecodeError, decodeCanonical, encodeCanonical } from '../codec/index.ts'
import { type Address, sha256Hex } from '../crypto/index.ts'
import { addressSchema, chainIdSchema, hashSchema, uintSchema } from './schema.ts'
import { txHash } from './tx.ts'
import { type SignedVote, signedVoteSchema } from './vote.ts'

export interface BlockHeader {
  chainId: string
  height: number
  /** Proposer's clock, ms since the epoch; strictly increasing along the chain. */
  time: number
  /** Hash of the previous block's header ('' for the first block). */
  prevHash: string
  txRoot: string
  /** Root of the state after applying this block's transactions. */
  stateRoot: string
  proposer: Address
  /** Hash of the validator set that decides this block. */
  validatorsHash: string
  lastCommitHash: string
}

/** +2/3 of the stake's precommits for one block: the proof that it is final. */
export interface Commit {
  height: number
  round: number
  blockHash: string
  precommits: SignedVote[]
}

export interface Block {
  header: BlockHeader
  /** Wire bytes of each signed transaction, in order. */
  txs: Uint8Array[]
  /** The commit of the previous block (null for the first block). */
  lastCommit: Commit | null
}

export const commitSchema = z
  .object({ height: uintSchema.min(1), round: uintSchema, blockHash: hashSchema, precommits: z.array(signedVoteSchema).max(1_000) })
  .strict()

const headerSchema = z
  .object({
    chainId: chainIdSchema,
    height: uintSchema.min(1),
    time: uintSchema,
    prevHash: z.union([hashSchema, z.literal('')]),
    txRoot: hashSchema,
    stateRoot: hashSchema,
    proposer: addressSchema,
    validatorsHash: hashSchema,
    lastCommitHash: hashSchema
  })
  .strict()

export const blockSchema = z
  .object({ header: headerSchema, txs: z.array(z.instanceof(Uint8Array)).max(100_000), lastCommit: commitSchema.nullable() })
  .strict()

export function blockHash(header: BlockHeader): string {
  return sha256Hex(encodeCanonical(header))
}

export function txRoot(txs: Uint8Array[]): string {
  return txRootOfIds(txs.map(txHash))
}

/** The transaction root from the transactions' ids (for callers that already hashed them). */
export function txRootOfIds(ids: string[]): string {
  return sha256Hex(encodeCanonical(ids))
}

export function commitHash(commit: Commit | null): string {
  return sha256Hex(encodeCanonical(commit))
}

export function encodeBlock(block: Block): Uint8Array {
  return encodeCanonical(block)
}

export function decodeBlock(bytes: Uint8Array, maxBytes: number): Block {
  const parsed = blockSchema.safeParse(decodeCanonical(bytes, maxBytes))
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new DecodeError('DECODE_MALFORMED', `not a block: ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  return parsed.data as Block
}

export function encodeCommit(commit: Commit): Uint8Array {
  return encodeCanonical(commit)
}
