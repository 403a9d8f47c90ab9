import { z } from 'zod'
import { DecodeError, decodeCanonical, encodeCanonical } from '../../codec/index.ts'
import { STAKE_ROLES } from '../../params/index.ts'
import { addressSchema, amountSchema, hashSchema, uintSchema } from '../schema.ts'
import { MAX_GOV_CHANGES, paramValueSchema } from '../tx.ts'
import { MAX_FINISHED_PROPOSALS, MAX_OPEN_PROPOSALS } from './apply-governance.ts'
import { type ChainState, GOV_CHOICES, type GovProposal } from './types.ts'

/** Largest state snapshot read back from disk. */
export const MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024

const sortedEntries = <T>(m: ReadonlyMap<string, T>): Array<[string, T]> => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
const validatorSchema = z.tuple([addressSchema, amountSchema])
const proposalSchema = z.tuple([
  uintSchema,
  addressSchema,
  z.array(z.tuple([z.string().min(1).max(64), paramValueSchema])).max(MAX_GOV_CHANGES),
  uintSchema,
  uintSchema,
  uintSchema,
  z.array(validatorSchema).max(1_000),
  z.array(z.tuple([addressSchema, z.enum(GOV_CHOICES)])).max(1_000),
  z.enum(['voting', 'passed', 'rejected', 'applied', 'failed']),
  z.tuple([amountSchema, amountSchema, amountSchema, amountSchema]).nullable(),
  z.string().max(1_000).nullable()
])

function encodeProposal(p: GovProposal): unknown[] {
  return [
    p.id,
    p.proposer,
    p.changes,
    p.height,
    p.votingEndHeight,
    p.applyHeight,
    p.snapshot.map((v) => [v.address, v.power]),
    sortedEntries(p.votes),
    p.status,
    p.tally == null ? null : [p.tally.yes, p.tally.no, p.tally.abstain, p.tally.total],
    p.failure
  ]
}

function decodeProposal(t: z.infer<typeof proposalSchema>): GovProposal {
  const [id, proposer, changes, height, votingEndHeight, applyHeight, snapshot, votes, status, tally, failure] = t
  return {
    id,
    proposer,
    changes,
    height,
    votingEndHeight,
    applyHeight,
    snapshot: snapshot.map(([address, power]) => ({ address, power })),
    votes: new Map(votes),
    status,
    tally: tally == null ? null : { yes: tally[0], no: tally[1], abstain: tally[2], total: tally[3] },
    failure
  }
}

const snapshotSchema = z
  .object({
    v: z.literal(2),
    chainId: z.string().min(1).max(64),
    height: uintSchema,
    lastBlockHash: z.union([hashSchema, z.literal('')]),
    lastBlockTime: uintSchema,
    params: z
      .object({
        blockTimeMs: uintSchema,
        unbondingBlocks: uintSchema,
        minValidatorStake: amountSchema,
        minHostStake: amountSchema,
        slashFractionBps: uintSchema,
        evidenceMaxAgeBlocks: uintSchema,
        maxValidators: uintSchema,
        minTxFee: amountSchema,
        maxTxBytes: uintSchema,
        maxBlockTxs: uintSchema,
        maxBlockBytes: uintSchema,
        baseFee: amountSchema,
        hostShareBps: uintSchema,
        validatorShareBps: uintSchema,
        targetTokensPerBlock: amountSchema,
        minMultiplier: amountSchema,
        maxMultiplier: amountSchema,
        escrowCloseDelayBlocks: uintSchema,
        govVotingBlocks: uintSchema,
        govQuorumBps: uintSchema,
        govThresholdBps: uintSchema
      })
      .strict(),
    accounts: z.array(z.tuple([addressSchema, amountSchema, uintSchema])),
    stakes: z.array(z.tuple([z.string().max(80), amountSchema])),
    unbonding: z.array(z.tuple([addressSchema, z.enum(STAKE_ROLES), amountSchema, uintSchema])),
    jailed: z.array(addressSchema),
    models: z.array(z.tuple([z.string(), z.string(), z.string().nullable(), amountSchema, addressSchema, uintSchema])),
    punished: z.array(z.string().max(100)),
    lastValidators: z.array(validatorSchema),
    validators: z.array(validatorSchema),
    nextValidators: z.array(validatorSchema),
    escrows: z.array(z.tuple([addressSchema, amountSchema, uintSchema.nullable()])),
    redeemed: z.array(z.tuple([z.string().max(140), amountSchema])),
    hostCarry: z.array(z.tuple([addressSchema, amountSchema])),
    markets: z.array(z.tuple([z.string().max(128), amountSchema, amountSchema])),
    totals: z.tuple([amountSchema, amountSchema, amountSchema, amountSchema]),
    proposals: z.array(proposalSchema).max(MAX_OPEN_PROPOSALS + MAX_FINISHED_PROPOSALS),
    nextProposalId: uintSchema
  })
  .strict()

/** The whole state as canonical bytes, for the on-disk snapshot a node restarts from. */
export function encodeState(s: ChainState): Uint8Array {
  return encodeCanonical({
    v: 2,
    chainId: s.chainId,
    height: s.height,
    lastBlockHash: s.lastBlockHash,
    lastBlockTime: s.lastBlockTime,
    params: s.params,
    accounts: sortedEntries(s.accounts).map(([k, a]) => [k, a.balance, a.nonce]),
    stakes: sortedEntries(s.stakes),
    unbonding: s.unbonding.map((u) => [u.address, u.role, u.amount, u.releaseHeight]),
    jailed: [...s.jailed].sort(),
    models: sortedEntries(s.models).map(([, m]) => [m.cid, m.name, m.parent, m.parameters, m.owner, m.height]),
    punished: [...s.punished].sort(),
    lastValidators: s.lastValidators.map((v) => [v.address, v.power]),
    validators: s.validators.map((v) => [v.address, v.power]),
    nextValidators: s.nextValidators.map((v) => [v.address, v.power]),
    escrows: sortedEntries(s.escrows).map(([k, e]) => [k, e.balance, e.releaseHeight]),
    redeemed: sortedEntries(s.redeemed),
    hostCarry: sortedEntries(s.hostCarry),
    markets: sortedEntries(s.markets).map(([k, m]) => [k, m.multiplier, m.served]),
    totals: [s.totals.feesRedeemed, s.totals.paidToHosts, s.totals.paidToValidators, s.totals.paidToTreasury],
    proposals: [...s.proposals.values()].sort((a, b) => a.id - b.id).map(encodeProposal),
    nextProposalId: s.nextProposalId
  })
}

/** Reads a snapshot back; throws DecodeError if the bytes are not exactly a snapshot. */
export function decodeState(bytes: Uint8Array): ChainState {
  const parsed = snapshotSchema.safeParse(decodeCanonical(bytes, MAX_SNAPSHOT_BYTES))
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new DecodeError('DECODE_MALFORMED', `not a state snapshot: ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  const p = parsed.data
  const validators = (vs: Array<[string, bigint]>) => vs.map(([address, power]) => ({ address, power }))
  return {
    chainId: p.chainId,
    height: p.height,
    lastBlockHash: p.lastBlockHash,
    lastBlockTime: p.lastBlockTime,
    params: p.params,
    accounts: new Map(p.accounts.map(([k, balance, nonce]) => [k, { balance, nonce }])),
    stakes: new Map(p.stakes),
    unbonding: p.unbonding.map(([address, role, amount, releaseHeight]) => ({ address, role, amount, releaseHeight })),
    jailed: new Set(p.jailed),
    models: new Map(
      p.models.map(([cid, name, parent, parameters, owner, height]) => [cid, { cid, name, parent, parameters, owner, height }])
    ),
    punished: new Set(p.punished),
    lastValidators: validators(p.lastValidators),
    validators: validators(p.validators),
    nextValidators: validators(p.nextValidators),
    escrows: new Map(p.escrows.map(([k, balance, releaseHeight]) => [k, { balance, releaseHeight }])),
    redeemed: new Map(p.redeemed),
    hostCarry: new Map(p.hostCarry),
    markets: new Map(p.markets.map(([k, multiplier, served]) => [k, { multiplier, served }])),
    totals: { feesRedeemed: p.totals[0], paidToHosts: p.totals[1], paidToValidators: p.totals[2], paidToTreasury: p.totals[3] },
    proposals: new Map(p.proposals.map((t) => [t[0], decodeProposal(t)])),
    nextProposalId: p.nextProposalId
  }
}
