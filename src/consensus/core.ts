import { isOneThird, isQuorum, type SignedProposal, type SignedVote, type Validator, type VoteType } from '../chain/index.ts'
import type { Address } from '../crypto/index.ts'
import { proposerFor } from './proposer.ts'
import type { ConsensusConfig, ConsensusEffect, ConsensusInput, LockState, Step, TimeoutKind } from './types.ts'

/**
 * Votes of one type in one round, with running tallies so quorum checks are O(1). A validator
 * counts once towards "any" votes, but towards every block it signed for: an equivocator's
 * conflicting votes are each real signatures, and counting them per block (as CometBFT does for
 * claimed majorities) lets honest nodes see a polka that others saw, which liveness needs.
 */
class VoteTally {
  /** The first vote of each validator. */
  readonly first = new Map<Address, SignedVote>()
  readonly byHash = new Map<string | null, Map<Address, SignedVote>>()
  private readonly power = new Map<string | null, bigint>()
  any = 0n

  /** Records a vote; returns the validator's earlier conflicting vote if there is one. */
  add(vote: SignedVote, power: bigint): SignedVote | undefined {
    let voters = this.byHash.get(vote.blockHash)
    if (voters == null) {
      voters = new Map()
      this.byHash.set(vote.blockHash, voters)
    }
    if (voters.has(vote.validator)) return undefined
    voters.set(vote.validator, vote)
    this.power.set(vote.blockHash, (this.power.get(vote.blockHash) ?? 0n) + power)
    const earlier = this.first.get(vote.validator)
    if (earlier == null) {
      this.first.set(vote.validator, vote)
      this.any += power
      return undefined
    }
    return earlier
  }

  /** The hash (or null for nil) holding more than two thirds, if one does. */
  quorumValue(total: bigint): { hash: string | null } | undefined {
    for (const [hash, power] of this.power) if (isQuorum(power, total)) return { hash }
    return undefined
  }

  /** The block (not nil) holding more than two thirds, if one does. */
  quorumBlock(total: bigint): string | undefined {
    for (const [hash, power] of this.power) if (hash != null && isQuorum(power, total)) return hash
    return undefined
  }

  powerFor(hash: string | null): bigint {
    return this.power.get(hash) ?? 0n
  }

  votesFor(hash: string | null): SignedVote[] {
    return [...(this.byHash.get(hash)?.values() ?? [])]
  }
}

interface RoundState {
  prevote: VoteTally
  precommit: VoteTally
  proposal: SignedProposal | undefined
  /** Whether `proposal` arrived timely (see the `proposal` input). */
  proposalTimely: boolean
  /** Validators heard from in this round (any message): for the round-skip rule. */
  senders: Set<Address>
  senderPower: bigint
}

/** Rounds beyond the current one for which messages are kept; anything further is dropped. */
export const MAX_ROUNDS_AHEAD = 64
/** Messages for the next height buffered while this one finishes. */
export const MAX_FUTURE_MESSAGES = 10_000

/**
 * The state of the Tendermint core for one node. Owned by the caller and changed only by
 * `stepConsensus`; it holds no clock, network, disk or randomness.
 */
export interface ConsensusState {
  config: ConsensusConfig
  height: number
  validators: readonly Validator[]
  power: ReadonlyMap<Address, bigint>
  totalPower: bigint
  round: number
  step: Step
  lockedRound: number
  lockedHash: string | null
  validRound: number
  validHash: string | null
  /** Blocks of this height the shell has checked, by hash: true if valid. */
  validity: Map<string, boolean>
  rounds: Map<number, RoundState>
  proposed: Set<number>
  prevoteTimeoutScheduled: Set<number>
  precommitTimeoutScheduled: Set<number>
  l36Done: Set<number>
  needBlockAsked: Set<string>
  future: ConsensusInput[]
}

export function createConsensusState(
  config: ConsensusConfig,
  height: number,
  validators: readonly Validator[],
  locks?: LockState
): ConsensusState {
  const s: ConsensusState = {
    config,
    height: 0,
    validators: [],
    power: new Map(),
    totalPower: 0n,
    round: 0,
    step: 'new-height',
    lockedRound: -1,
    lockedHash: null,
    validRound: -1,
    validHash: null,
    validity: new Map(),
    rounds: new Map(),
    proposed: new Set(),
    prevoteTimeoutScheduled: new Set(),
    precommitTimeoutScheduled: new Set(),
    l36Done: new Set(),
    needBlockAsked: new Set(),
    future: []
  }
  resetHeight(s, height, validators)
  if (locks != null && locks.height === height) {
    // a restart in the middle of a height: keep the locks, resume at the round we were in
    s.round = locks.round
    s.lockedRound = locks.lockedRound
    s.lockedHash = locks.lockedHash
    s.validRound = locks.validRound
    s.validHash = locks.validHash
  }
  return s
}

function resetHeight(s: ConsensusState, height: number, validators: readonly Validator[]): void {
  s.height = height
  s.validators = validators
  s.power = new Map(validators.map((v) => [v.address, v.power]))
  s.totalPower = validators.reduce((t, v) => t + v.power, 0n)
  s.round = 0
  s.step = 'new-height'
  s.lockedRound = -1
  s.lockedHash = null
  s.validRound = -1
  s.validHash = null
  s.validity = new Map()
  s.rounds = new Map()
  s.proposed = new Set()
  s.prevoteTimeoutScheduled = new Set()
  s.precommitTimeoutScheduled = new Set()
  s.l36Done = new Set()
  s.needBlockAsked = new Set()
}

function roundState(s: ConsensusState, round: number): RoundState {
  let r = s.rounds.get(round)
  if (r == null) {
    r = {
      prevote: new VoteTally(),
      precommit: new VoteTally(),
      proposal: undefined,
      proposalTimely: false,
      senders: new Set(),
      senderPower: 0n
    }
    s.rounds.set(round, r)
  }
  return r
}

export function locksOf(s: ConsensusState): LockState {
  return {
    height: s.height,
    round: s.round,
    lockedRound: s.lockedRound,
    lockedHash: s.lockedHash,
    validRound: s.validRound,
    validHash: s.validHash
  }
}

function timeoutMs(s: ConsensusState, kind: TimeoutKind, round: number): number {
  const t = s.config.timeouts
  const base = kind === 'propose' ? t.proposeMs : kind === 'prevote' ? t.prevoteMs : t.precommitMs
  return base + round * t.deltaMs
}

function isProposer(s: ConsensusState, round: number): boolean {
  return s.config.self != null && proposerFor(s.config.chainId, s.validators, s.height, round) === s.config.self
}

function amValidator(s: ConsensusState): boolean {
  return s.config.self != null && s.power.has(s.config.self)
}

function castVote(s: ConsensusState, fx: ConsensusEffect[], type: VoteType, blockHash: string | null): void {
  if (!amValidator(s) || s.config.self == null) return
  fx.push({ type: 'persist', locks: locksOf(s) })
  fx.push({
    type: 'vote',
    vote: { chainId: s.config.chainId, height: s.height, round: s.round, type, blockHash, validator: s.config.self }
  })
}

function startRound(s: ConsensusState, fx: ConsensusEffect[], round: number): void {
  s.round = round
  s.step = 'propose'
  if (isProposer(s, round) && !s.proposed.has(round)) {
    if (s.validHash != null && s.validity.get(s.validHash) === true) {
      s.proposed.add(round)
      fx.push({ type: 'persist', locks: locksOf(s) })
      fx.push({ type: 'propose', proposal: proposalFor(s, round, s.validHash, s.validRound) })
    } else {
      fx.push({ type: 'get-value', height: s.height, round })
    }
  }
  fx.push({ type: 'schedule-timeout', kind: 'propose', height: s.height, round, ms: timeoutMs(s, 'propose', round) })
}

function proposalFor(s: ConsensusState, round: number, blockHash: string, validRound: number) {
  return { chainId: s.config.chainId, height: s.height, round, validRound, blockHash, proposer: s.config.self as Address }
}

function noteSender(s: ConsensusState, round: number, sender: Address): void {
  const r = roundState(s, round)
  if (!r.senders.has(sender)) {
    r.senders.add(sender)
    r.senderPower += s.power.get(sender) ?? 0n
  }
}

/** Applies the "upon" rules of the Tendermint paper until none fires. */
function runRules(s: ConsensusState, fx: ConsensusEffect[]): void {
  for (let guard = 0; guard < 1_000; guard++) {
    if (!fireOne(s, fx)) return
  }
  throw new Error('invariant: consensus rules did not settle')
}

function fireOne(s: ConsensusState, fx: ConsensusEffect[]): boolean {
  if (s.step === 'commit' || s.step === 'new-height') return false
  const total = s.totalPower

  // L49: +2/3 precommits for a block in any round decide it, once we hold the block
  for (const [round, r] of s.rounds) {
    const q = r.precommit.quorumValue(total)
    if (q == null || q.hash == null) continue
    if (s.validity.get(q.hash) === true) {
      s.step = 'commit'
      const precommits = r.precommit.votesFor(q.hash)
      fx.push({ type: 'decide', height: s.height, round, blockHash: q.hash, precommits })
      return true
    }
    if (!s.needBlockAsked.has(q.hash) && !s.validity.has(q.hash)) {
      s.needBlockAsked.add(q.hash)
      fx.push({ type: 'need-block', height: s.height, blockHash: q.hash })
    }
  }

  // L55: more than a third of the power is already in a later round: join it
  for (const [round, r] of s.rounds) {
    if (round > s.round && isOneThird(r.senderPower, total)) {
      startRound(s, fx, round)
      return true
    }
  }

  const cur = roundState(s, s.round)
  const proposal = cur.proposal
  if (s.step === 'propose' && proposal != null) {
    const hash = proposal.blockHash
    const valid = s.validity.get(hash) === true
    if (proposal.validRound === -1) {
      // L22
      s.step = 'prevote'
      castVote(s, fx, 'prevote', valid && cur.proposalTimely && (s.lockedRound === -1 || s.lockedHash === hash) ? hash : null)
      return true
    }
    const vr = proposal.validRound
    if (vr < s.round && isQuorum(roundState(s, vr).prevote.powerFor(hash), total)) {
      // L28
      s.step = 'prevote'
      castVote(s, fx, 'prevote', valid && (s.lockedRound <= vr || s.lockedHash === hash) ? hash : null)
      return true
    }
  }

  // L34
  if (s.step === 'prevote' && isQuorum(cur.prevote.any, total) && !s.prevoteTimeoutScheduled.has(s.round)) {
    s.prevoteTimeoutScheduled.add(s.round)
    fx.push({ type: 'schedule-timeout', kind: 'prevote', height: s.height, round: s.round, ms: timeoutMs(s, 'prevote', s.round) })
    return true
  }

  // L36: a polka for the proposal of this round
  if ((s.step === 'prevote' || s.step === 'precommit') && proposal != null && !s.l36Done.has(s.round)) {
    const hash = proposal.blockHash
    if (s.validity.get(hash) === true && isQuorum(cur.prevote.powerFor(hash), total)) {
      s.l36Done.add(s.round)
      s.validHash = hash
      s.validRound = s.round
      if (s.step === 'prevote') {
        s.lockedHash = hash
        s.lockedRound = s.round
        s.step = 'precommit'
        castVote(s, fx, 'precommit', hash)
      } else {
        fx.push({ type: 'persist', locks: locksOf(s) })
      }
      return true
    }
  }

  // L36, for an earlier round: a polka for a valid block in a round after `validRound` that this
  // node saw only once it had left that round (a partition, a lost relay). The paper updates
  // validValue only while in the polka's round; then a validator that learns of a lock late keeps
  // proposing fresh blocks that the locked validators refuse, and progress waits until the
  // proposer draw happens to pick a locked one. Adopting the polka as the valid value (never as a
  // lock) makes this node re-propose it, with the polka's round as proof, which every honest
  // validator locked at or before that round accepts (L28). Safety is untouched: receivers check
  // the polka themselves, and a byzantine proposer could send the same proposal.
  let latePolka: { round: number; hash: string } | undefined
  for (const [round, r] of s.rounds) {
    if (round <= s.validRound || round >= s.round || (latePolka != null && round <= latePolka.round)) continue
    const hash = r.prevote.quorumBlock(total)
    if (hash != null && s.validity.get(hash) === true) latePolka = { round, hash }
  }
  if (latePolka != null) {
    s.validHash = latePolka.hash
    s.validRound = latePolka.round
    fx.push({ type: 'persist', locks: locksOf(s) })
    return true
  }

  // L44: a polka for nil
  if (s.step === 'prevote' && isQuorum(cur.prevote.powerFor(null), total)) {
    s.step = 'precommit'
    castVote(s, fx, 'precommit', null)
    return true
  }

  // L47
  if (isQuorum(cur.precommit.any, total) && !s.precommitTimeoutScheduled.has(s.round)) {
    s.precommitTimeoutScheduled.add(s.round)
    fx.push({ type: 'schedule-timeout', kind: 'precommit', height: s.height, round: s.round, ms: timeoutMs(s, 'precommit', s.round) })
    return true
  }
  return false
}

function acceptsRound(s: ConsensusState, round: number): boolean {
  return round <= s.round + MAX_ROUNDS_AHEAD
}

function bufferFuture(s: ConsensusState, input: ConsensusInput): void {
  if (s.future.length < MAX_FUTURE_MESSAGES) s.future.push(input)
}

function onVote(s: ConsensusState, fx: ConsensusEffect[], vote: SignedVote): void {
  if (vote.chainId !== s.config.chainId) return
  if (vote.height === s.height + 1) {
    bufferFuture(s, { type: 'vote', vote })
    return
  }
  if (vote.height !== s.height || !acceptsRound(s, vote.round)) return
  const power = s.power.get(vote.validator)
  if (power == null) return
  const r = roundState(s, vote.round)
  const tally = vote.type === 'prevote' ? r.prevote : r.precommit
  const conflicting = tally.add(vote, power)
  if (conflicting != null) fx.push({ type: 'evidence', a: conflicting, b: vote })
  noteSender(s, vote.round, vote.validator)
}

function onProposal(s: ConsensusState, proposal: SignedProposal, valid: boolean, timely: boolean): void {
  if (proposal.chainId !== s.config.chainId) return
  if (proposal.height === s.height + 1) {
    bufferFuture(s, { type: 'proposal', proposal, valid, timely })
    return
  }
  if (proposal.height !== s.height || !acceptsRound(s, proposal.round)) return
  if (proposal.validRound >= proposal.round) return
  if (proposerFor(s.config.chainId, s.validators, s.height, proposal.round) !== proposal.proposer) return
  // the block's validity is a fact about the block, whichever round proposes it
  if (!s.validity.has(proposal.blockHash) || valid) s.validity.set(proposal.blockHash, valid)
  const r = roundState(s, proposal.round)
  if (r.proposal == null) {
    r.proposal = proposal
    r.proposalTimely = timely
  }
  // our own proposal, replayed after a restart: never build another for this round
  if (proposal.proposer === s.config.self) s.proposed.add(proposal.round)
  noteSender(s, proposal.round, proposal.proposer)
}

function onTimeout(s: ConsensusState, fx: ConsensusEffect[], kind: TimeoutKind, height: number, round: number): void {
  if (height !== s.height || round !== s.round) return
  if (kind === 'propose' && s.step === 'propose') {
    s.step = 'prevote'
    castVote(s, fx, 'prevote', null)
  } else if (kind === 'prevote' && s.step === 'prevote') {
    s.step = 'precommit'
    castVote(s, fx, 'precommit', null)
  } else if (kind === 'precommit' && s.step !== 'commit' && s.step !== 'new-height') {
    startRound(s, fx, round + 1)
  }
}

/**
 * The Tendermint step function (Buchman, Kwon, Milosevic 2018, Algorithm 1): takes one input,
 * updates `s` and returns the effects for the shell to carry out in order. Deterministic: the
 * same state and input always give the same effects.
 */
export function stepConsensus(s: ConsensusState, input: ConsensusInput): ConsensusEffect[] {
  const fx: ConsensusEffect[] = []
  switch (input.type) {
    case 'new-height': {
      resetHeight(s, input.height, input.validators)
      const pending = s.future
      s.future = []
      for (const m of pending) {
        if (m.type === 'vote') onVote(s, fx, m.vote)
        else if (m.type === 'proposal') onProposal(s, m.proposal, m.valid, m.timely ?? true)
      }
      return fx
    }
    case 'start':
      if (s.step === 'new-height') {
        startRound(s, fx, s.round)
        runRules(s, fx)
      }
      return fx
    case 'vote':
      onVote(s, fx, input.vote)
      break
    case 'proposal':
      onProposal(s, input.proposal, input.valid, input.timely ?? true)
      break
    case 'timeout':
      onTimeout(s, fx, input.kind, input.height, input.round)
      break
    case 'value':
      if (
        input.height === s.height &&
        input.round === s.round &&
        s.step === 'propose' &&
        isProposer(s, s.round) &&
        !s.proposed.has(s.round)
      ) {
        s.proposed.add(s.round)
        s.validity.set(input.blockHash, true)
        fx.push({ type: 'persist', locks: locksOf(s) })
        fx.push({ type: 'propose', proposal: proposalFor(s, s.round, input.blockHash, -1) })
      }
      break
  }
  runRules(s, fx)
  return fx
}
