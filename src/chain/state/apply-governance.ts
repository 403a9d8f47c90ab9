import type { Address } from '../../crypto/index.ts'
import { CHAIN_DEFAULTS, type ChainParams } from '../../params/index.ts'
import type { StateDraft } from './draft.ts'
import { checkParams } from './genesis.ts'
import { type GovChoice, type GovProposal, type GovTally, TxError } from './types.ts'

/**
 * Governance: stakers propose parameter changes, the validators of the moment vote with the
 * power they had then, and a proposal that reaches quorum and threshold changes `params` at its
 * apply height, at the end of that block, on every node. Every function checks everything
 * before its first write, so a refused transaction changes nothing.
 */

/**
 * Parameters no proposal may change: they size what the network layer and the mempool accept
 * (gossip frames, decoders) when a node starts, so changing them needs a software upgrade.
 */
export const FIXED_PARAMS: ReadonlyArray<keyof ChainParams> = ['maxTxBytes', 'maxBlockTxs', 'maxBlockBytes']

/** Parameters a proposal may change: every chain parameter but the fixed ones. */
export const GOVERNABLE_PARAMS: ReadonlyArray<keyof ChainParams> = (Object.keys(CHAIN_DEFAULTS) as Array<keyof ChainParams>).filter(
  (k) => !FIXED_PARAMS.includes(k)
)

/** Proposals voting or passed and waiting for their apply height, over all proposers. */
export const MAX_OPEN_PROPOSALS = 32
/** Open proposals one proposer may have at once (a proposal carries several changes). */
export const MAX_OPEN_PROPOSALS_PER_PROPOSER = 2
/** Most blocks between the end of voting and the apply height. */
export const MAX_APPLY_DELAY_BLOCKS = 1_000_000
/** Finished proposals (rejected, applied, failed) kept in the state; the oldest are dropped beyond this. */
export const MAX_FINISHED_PROPOSALS = 256

const isOpen = (p: GovProposal): boolean => p.status === 'voting' || p.status === 'passed'

/**
 * `params` with `changes` applied: each name governable and given once, each value within
 * `CHAIN_PARAM_BOUNDS`, and the result passing every cross-field check of `checkParams`.
 * Throws TxError naming the first problem.
 */
export function paramsWithChanges(params: ChainParams, changes: ReadonlyArray<readonly [string, string]>): ChainParams {
  const next: Record<string, number | bigint> = { ...params }
  const seen = new Set<string>()
  for (const [name, value] of changes) {
    if (!(GOVERNABLE_PARAMS as readonly string[]).includes(name)) {
      const why = (FIXED_PARAMS as readonly string[]).includes(name) ? 'is fixed for a running chain' : 'is not a chain parameter'
      throw new TxError('PARAM_NOT_GOVERNABLE', `${name} ${why}; governable: ${GOVERNABLE_PARAMS.join(', ')}`)
    }
    if (seen.has(name)) throw new TxError('MALFORMED', `${name} is changed twice in one proposal`)
    seen.add(name)
    if (!/^(0|[1-9][0-9]{0,19})$/.test(value)) throw new TxError('MALFORMED', `${name} = ${value} is not a decimal integer`)
    next[name] = typeof CHAIN_DEFAULTS[name as keyof ChainParams] === 'bigint' ? BigInt(value) : Number(value)
  }
  const bad = checkParams(next as unknown as ChainParams)
  if (bad != null) throw new TxError('PARAM_OUT_OF_RANGE', `the proposed ${bad.replaceAll('params.', '')}`)
  return next as unknown as ChainParams
}

/** Checks `params` with `changes` against the state too: the stakes must still give a validator set. */
function checkedParams(d: StateDraft, changes: ReadonlyArray<readonly [string, string]>): ChainParams {
  const next = paramsWithChanges(d.params, changes)
  if (d.computeValidatorSet(next).length === 0) {
    throw new TxError(
      'PARAM_OUT_OF_RANGE',
      `no validator would be left: none stakes the proposed minValidatorStake ${next.minValidatorStake}`
    )
  }
  return next
}

/** Records a proposal. The proposer must stake at least the minimum as a validator or a host. */
export function applyGovPropose(
  d: StateDraft,
  proposer: Address,
  changes: ReadonlyArray<readonly [string, string]>,
  applyHeight: number,
  height: number
): void {
  const validatorStake = d.jailed.has(proposer) ? 0n : d.stake('validator', proposer)
  if (validatorStake < d.params.minValidatorStake && d.stake('host', proposer) < d.params.minHostStake) {
    throw new TxError(
      'NOT_A_STAKER',
      `${proposer} may not propose: it needs a validator stake of ${d.params.minValidatorStake} or a host stake of ${d.params.minHostStake}`
    )
  }
  checkedParams(d, changes)
  const votingEndHeight = height + d.params.govVotingBlocks
  if (applyHeight < votingEndHeight) {
    throw new TxError('BAD_APPLY_HEIGHT', `apply height ${applyHeight} is before the end of voting at ${votingEndHeight}; use it or later`)
  }
  if (applyHeight > votingEndHeight + MAX_APPLY_DELAY_BLOCKS) {
    throw new TxError(
      'BAD_APPLY_HEIGHT',
      `apply height ${applyHeight} is more than ${MAX_APPLY_DELAY_BLOCKS} blocks after the end of voting`
    )
  }
  let open = 0
  let own = 0
  for (const p of d.proposals.values()) {
    if (!isOpen(p)) continue
    open++
    if (p.proposer === proposer) own++
  }
  if (open >= MAX_OPEN_PROPOSALS) throw new TxError('TOO_MANY_PROPOSALS', `${open} proposals are open, the limit; wait for one to finish`)
  if (own >= MAX_OPEN_PROPOSALS_PER_PROPOSER) {
    throw new TxError('TOO_MANY_PROPOSALS', `${proposer} has ${own} open proposals, the limit; wait for one to finish`)
  }
  const id = d.nextProposalId
  d.nextProposalId = id + 1
  d.proposals.set(id, {
    id,
    proposer,
    changes: changes.map(([name, value]) => [name, value] as const),
    height,
    votingEndHeight,
    applyHeight,
    snapshot: d.validators,
    votes: new Map(),
    status: 'voting',
    tally: null,
    failure: null
  })
}

/** Records (or replaces) a vote of a validator in the proposal's snapshot while it is open. */
export function applyGovVote(d: StateDraft, voter: Address, id: number, choice: GovChoice, height: number): void {
  const p = d.proposals.get(id)
  if (p == null) throw new TxError('UNKNOWN_PROPOSAL', `there is no proposal ${id}`)
  if (p.status !== 'voting' || height > p.votingEndHeight) {
    throw new TxError('VOTING_CLOSED', `voting on proposal ${id} ended at height ${p.votingEndHeight}`)
  }
  if (!p.snapshot.some((v) => v.address === voter)) {
    throw new TxError('NOT_A_VOTER', `${voter} was not a validator when proposal ${id} was made, so it has no vote on it`)
  }
  if (d.jailed.has(voter)) throw new TxError('JAILED', `${voter} was jailed for double-signing and has lost its vote`)
  const votes = new Map(p.votes)
  votes.set(voter, choice)
  d.proposals.set(id, { ...p, votes })
}

/** The power behind each choice; validators jailed since the snapshot count for nothing. Pure. */
export function tallyProposal(p: GovProposal, jailed: ReadonlySet<Address>): GovTally {
  const tally = { yes: 0n, no: 0n, abstain: 0n, total: 0n }
  for (const v of p.snapshot) {
    if (jailed.has(v.address)) continue
    tally.total += v.power
    const choice = p.votes.get(v.address)
    if (choice != null) tally[choice] += v.power
  }
  return tally
}

/** Whether a tally passes: at least `quorumBps` of the power voted, and yes is over `thresholdBps` of yes + no. */
export function tallyPasses(t: GovTally, params: Pick<ChainParams, 'govQuorumBps' | 'govThresholdBps'>): boolean {
  const voted = t.yes + t.no + t.abstain
  const quorum = t.total > 0n && voted * 10_000n >= t.total * BigInt(params.govQuorumBps)
  return quorum && t.yes * 10_000n > (t.yes + t.no) * BigInt(params.govThresholdBps)
}

/**
 * End of block: proposals whose voting ends here are tallied; passed ones whose apply height is
 * this block change `params` (in id order, each checked again against the parameters of the
 * moment, so two proposals that fit alone but not together cannot break the bounds).
 */
export function settleGovernance(d: StateDraft, height: number): void {
  if (d.proposals.size === 0) return
  const ids = [...d.proposals.keys()].sort((a, b) => a - b)
  for (const id of ids) {
    const p = d.proposals.get(id) as GovProposal
    if (p.status !== 'voting' || p.votingEndHeight > height) continue
    const tally = tallyProposal(p, d.jailed)
    d.proposals.set(id, { ...p, tally, status: tallyPasses(tally, d.params) ? 'passed' : 'rejected' })
  }
  for (const id of ids) {
    const p = d.proposals.get(id) as GovProposal
    if (p.status !== 'passed' || p.applyHeight > height) continue
    try {
      d.params = checkedParams(d, p.changes)
      d.proposals.set(id, { ...p, status: 'applied' })
    } catch (err) {
      if (!(err instanceof TxError)) throw err
      d.proposals.set(id, { ...p, status: 'failed', failure: err.message })
    }
  }
  const finished = ids.filter((id) => !isOpen(d.proposals.get(id) as GovProposal))
  for (const id of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_PROPOSALS))) d.proposals.delete(id)
}
