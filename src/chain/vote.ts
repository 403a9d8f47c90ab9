import { z } from 'zod'
import { encodeCanonical } from '../codec/index.ts'
import type { Address, SignatureVerifier, Signer } from '../crypto/index.ts'
import { addressSchema, chainIdSchema, hashSchema, signatureSchema, uintSchema } from './schema.ts'

export const VOTE_TYPES = ['prevote', 'precommit'] as const
export type VoteType = (typeof VOTE_TYPES)[number]

/** A validator's vote for a block (by hash) or for nothing (`blockHash: null`) in one round. */
export interface Vote {
  chainId: string
  height: number
  round: number
  type: VoteType
  blockHash: string | null
  validator: Address
}

export interface SignedVote extends Vote {
  sig: Uint8Array
}

/** The proposer's signed claim that `blockHash` is its proposal for (height, round). */
export interface Proposal {
  chainId: string
  height: number
  round: number
  /** The round in which this block got +2/3 prevotes before, or -1. */
  validRound: number
  blockHash: string
  proposer: Address
}

export interface SignedProposal extends Proposal {
  sig: Uint8Array
}

export const voteSchema = z
  .object({
    chainId: chainIdSchema,
    height: uintSchema.min(1),
    round: uintSchema,
    type: z.enum(VOTE_TYPES),
    blockHash: hashSchema.nullable(),
    validator: addressSchema
  })
  .strict()

export const signedVoteSchema = voteSchema.extend({ sig: signatureSchema }).strict()

export const signedProposalSchema = z
  .object({
    chainId: chainIdSchema,
    height: uintSchema.min(1),
    round: uintSchema,
    validRound: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
    blockHash: hashSchema,
    proposer: addressSchema,
    sig: signatureSchema
  })
  .strict()

function unsignedVote(v: Vote): Vote {
  return { chainId: v.chainId, height: v.height, round: v.round, type: v.type, blockHash: v.blockHash, validator: v.validator }
}

/** The bytes a validator signs for a vote: domain-separated from transactions and proposals. */
export function voteSignBytes(v: Vote): Uint8Array {
  return encodeCanonical({ domain: 'llmesh/vote/1', vote: unsignedVote(v) })
}

export function proposalSignBytes(p: Proposal): Uint8Array {
  const { chainId, height, round, validRound, blockHash, proposer } = p
  return encodeCanonical({ domain: 'llmesh/proposal/1', proposal: { chainId, height, round, validRound, blockHash, proposer } })
}

export function signVote(v: Vote, signer: Signer): SignedVote {
  if (signer.address !== v.validator) throw new Error('signer is not the vote validator')
  return { ...unsignedVote(v), sig: signer.sign(voteSignBytes(v)) }
}

export function verifyVote(v: SignedVote, verifier: SignatureVerifier): boolean {
  return verifier.verify(v.validator, voteSignBytes(v), v.sig)
}

export function signProposal(p: Proposal, signer: Signer): SignedProposal {
  if (signer.address !== p.proposer) throw new Error('signer is not the proposer')
  const { chainId, height, round, validRound, blockHash, proposer } = p
  return { chainId, height, round, validRound, blockHash, proposer, sig: signer.sign(proposalSignBytes(p)) }
}

export function verifyProposal(p: SignedProposal, verifier: SignatureVerifier): boolean {
  return verifier.verify(p.proposer, proposalSignBytes(p), p.sig)
}

/** Two signed votes of one validator for one (height, round, type) naming different blocks. */
export function isEquivocation(a: Vote, b: Vote): boolean {
  return (
    a.chainId === b.chainId &&
    a.validator === b.validator &&
    a.height === b.height &&
    a.round === b.round &&
    a.type === b.type &&
    a.blockHash !== b.blockHash
  )
}
