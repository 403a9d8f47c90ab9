import type { Proposal, SignedProposal, SignedVote, Validator, Vote } from '../chain/index.ts'
import type { Address } from '../crypto/index.ts'

export type Step = 'new-height' | 'propose' | 'prevote' | 'precommit' | 'commit'
export type TimeoutKind = 'propose' | 'prevote' | 'precommit'

export interface ConsensusTimeouts {
  /** Base wait for a proposal in round 0; grows by `delta` each round. */
  proposeMs: number
  prevoteMs: number
  precommitMs: number
  /** Added per round to every timeout, so rounds slow down until the network keeps up. */
  deltaMs: number
}

export interface ConsensusConfig {
  chainId: string
  /** This node's validator address, or null for a node that only follows. */
  self: Address | null
  timeouts: ConsensusTimeouts
}

/** What the shell hands the core. Signatures are checked by the shell before input. */
export type ConsensusInput =
  /** Begin the height set by `new-height` (after the pause between blocks). */
  | { type: 'start' }
  /** Move to `height` with its validator set (after committing or syncing the block before). */
  | { type: 'new-height'; height: number; validators: readonly Validator[] }
  /**
   * A proposal with a verified signature; `valid` says whether its block applies to our state,
   * `timely` (default true) whether its block time was within bounds of our clock when it arrived.
   * Timeliness only decides the prevote for a block first proposed in its round (proposer-based
   * timestamps): a block that +2/3 of the power prevoted is locked and precommitted whatever our
   * clock said, so a late arrival (a restart, a partition) cannot stall a round that others carry.
   */
  | { type: 'proposal'; proposal: SignedProposal; valid: boolean; timely?: boolean }
  | { type: 'vote'; vote: SignedVote }
  | { type: 'timeout'; kind: TimeoutKind; height: number; round: number }
  /** The shell's answer to `get-value`: a block it built and checked, by hash. */
  | { type: 'value'; height: number; round: number; blockHash: string }

/** What the core asks the shell to do, in order. */
export type ConsensusEffect =
  /** Build a block for (height, round) and answer with a `value` input. */
  | { type: 'get-value'; height: number; round: number }
  /** Save the lock state durably before the effects that follow leave the node. */
  | { type: 'persist'; locks: LockState }
  /** Sign (after the double-sign guard) and broadcast; feed the signed proposal back as input. */
  | { type: 'propose'; proposal: Proposal }
  /** Sign (after the double-sign guard) and broadcast; feed the signed vote back as input. */
  | { type: 'vote'; vote: Vote }
  | { type: 'schedule-timeout'; kind: TimeoutKind; height: number; round: number; ms: number }
  /** +2/3 precommitted `blockHash` in `round`: the block is final. */
  | { type: 'decide'; height: number; round: number; blockHash: string; precommits: SignedVote[] }
  /** +2/3 precommitted a block this node does not have: fetch it (with its commit) from peers. */
  | { type: 'need-block'; height: number; blockHash: string }
  /** A validator signed two different votes for one (height, round, type). */
  | { type: 'evidence'; a: SignedVote; b: SignedVote }

/** The part of the core's state that must survive a crash so a restarted node keeps its locks. */
export interface LockState {
  height: number
  round: number
  lockedRound: number
  lockedHash: string | null
  validRound: number
  validHash: string | null
}
