import { z } from 'zod'
import { blockSchema, commitSchema, signedProposalSchema, signedVoteSchema } from '../chain/index.ts'
import { DecodeError, decodeCanonical, encodeCanonical } from '../codec/index.ts'
import { MAX_CONSENSUS_MESSAGE_BYTES } from '../params/index.ts'
import type { ConsensusMessage } from './driver.ts'

export { MAX_CONSENSUS_MESSAGE_BYTES }

const messageSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('proposal'), proposal: signedProposalSchema, block: blockSchema }).strict(),
  z.object({ kind: z.literal('vote'), vote: signedVoteSchema }).strict(),
  z.object({ kind: z.literal('block-request'), fromHeight: z.number().int().min(1) }).strict(),
  z.object({ kind: z.literal('blocks'), blocks: z.array(z.object({ block: blockSchema, commit: commitSchema }).strict()).max(64) }).strict()
])

export function encodeConsensusMessage(msg: ConsensusMessage): Uint8Array {
  return encodeCanonical(msg)
}

/** Decodes a consensus message from a peer: bounded, canonical DAG-CBOR, every field well-typed. */
export function decodeConsensusMessage(bytes: Uint8Array, maxBytes = MAX_CONSENSUS_MESSAGE_BYTES): ConsensusMessage {
  const parsed = messageSchema.safeParse(decodeCanonical(bytes, maxBytes))
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new DecodeError('DECODE_MALFORMED', `not a consensus message: ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  return parsed.data as unknown as ConsensusMessage
}
