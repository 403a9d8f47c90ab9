import {
  applyBlock,
  type Block,
  BlockError,
  blockHash,
  buildBlock,
  type ChainState,
  type Commit,
  checkCommit,
  type SignedProposal,
  type SignedVote,
  signProposal,
  signVote,
  type TxCache,
  verifyProposal,
  verifyVote
} from '../chain/index.ts'
import type { SignatureVerifier, Signer } from '../crypto/index.ts'
import { type ConsensusState, createConsensusState, stepConsensus } from './core.ts'
import { allowSign, type DoubleSignGuard, SIGN_STEP } from './guard.ts'
import { proposerFor } from './proposer.ts'
import type { ConsensusEffect, ConsensusInput, ConsensusTimeouts, LockState } from './types.ts'

interface EarlyProposal {
  from: string
  proposal: SignedProposal
  block: Block
  receivedAt: number
}

/** Proposals for the next height kept until this node gets there (a few rounds' worth). */
const MAX_EARLY_PROPOSALS = 8

/** Distinct votes relayed per height; beyond this a node stops forwarding (its own still go out). */
const MAX_RELAYED_PER_HEIGHT = 100_000

/** Messages validators exchange (over gossip in a node, over the simulated network in tests). */
export type ConsensusMessage =
  | { kind: 'proposal'; proposal: SignedProposal; block: Block }
  | { kind: 'vote'; vote: SignedVote }
  | { kind: 'block-request'; fromHeight: number }
  | { kind: 'blocks'; blocks: Array<{ block: Block; commit: Commit }> }

/** This validator's signed messages of one height, kept so a restart can re-send them. */
export interface OwnMessages {
  height: number
  messages: ConsensusMessage[]
}

export interface CommittedBlock {
  block: Block
  hash: string
  commit: Commit
  state: ChainState
}

/** Everything the driver needs from outside: clock, timers, network, disk, mempool. */
export interface DriverEnv {
  now(): number
  setTimer(ms: number, fn: () => void): void
  broadcast(msg: ConsensusMessage): void
  send(to: string, msg: ConsensusMessage): void
  /** Durably saves the lock state; returns once it is on disk. */
  persistLocks(locks: LockState): void
  /**
   * Durably saves this node's signed messages of `height` (its proposal with the block, its votes);
   * returns once they are on disk. A restarted node re-sends them instead of going silent.
   */
  persistOwn(own: OwnMessages): void
  /** Durably appends a committed block (and the state after it). */
  commitBlock(committed: CommittedBlock): void
  loadBlock(height: number): { block: Block; commit: Commit } | undefined | Promise<{ block: Block; commit: Commit } | undefined>
  /** Transactions to try in the next block, in order. */
  mempool(): Iterable<Uint8Array>
  /** A double-sign was seen: turn it into an evidence transaction. */
  evidence(a: SignedVote, b: SignedVote): void
  log?(event: string, data?: Record<string, unknown>): void
}

export interface DriverInit {
  state: ChainState
  signer: Signer | null
  guard: DoubleSignGuard | null
  verifier: SignatureVerifier
  /** Decoded transactions and signature results shared with the mempool, so each is checked once. */
  txCache?: TxCache
  timeouts: ConsensusTimeouts
  /** Lock state saved before a crash, if any. */
  locks?: LockState
  /** Signed messages saved before a crash, if any. */
  own?: OwnMessages
  /**
   * The commit of the block `state` follows (from the store): the next block this node proposes
   * must carry it. Without it a restarted validator proposes blocks every peer refuses until it
   * commits a height again.
   */
  lastCommit?: Commit | null
  /** Forward every new valid proposal and vote to all peers (flood gossip). */
  relay?: boolean
  /** How often to re-send this node's own messages of the current height (recovers lost ones). */
  rebroadcastMs?: number
  /** Blocks sent in one catch-up answer. */
  maxBlocksPerAnswer?: number
  /**
   * How far a fresh proposal's block time may be from this node's clock (proposer-based time):
   * at most `precisionMs` ahead, at most `precisionMs + msgDelayMs × (round + 1)` behind.
   */
  clock?: { precisionMs: number; msgDelayMs: number }
}

/** Clock bounds of a real network: generous, so an overloaded but honest proposer stays timely. */
export const DEFAULT_CLOCK_BOUNDS = { precisionMs: 1_000, msgDelayMs: 3_000 } as const

/**
 * The thin shell around the consensus core: checks signatures and blocks before they reach the
 * core, signs through the double-sign guard, builds and applies blocks, keeps time with timers,
 * and catches up from peers. All I/O goes through `DriverEnv`, so the same driver runs in a node
 * and in the deterministic simulation.
 */
export class ConsensusDriver {
  private readonly env: DriverEnv
  private readonly init: Required<Omit<DriverInit, 'locks' | 'own' | 'signer' | 'guard' | 'txCache' | 'lastCommit'>> &
    Pick<DriverInit, 'signer' | 'guard' | 'own' | 'txCache'>
  private chain: ChainState
  private core: ConsensusState
  private lastCommit: Commit | null = null
  /** Blocks seen for the current height, by hash, with the state after each (if valid). */
  private candidates = new Map<string, { block: Block; state: ChainState | null }>()
  private readonly own = new Map<string, ConsensusMessage>()
  private readonly queue: ConsensusInput[] = []
  private running = false
  private heightStartedAt = 0
  private lastSyncRequest = 0
  private readonly answered = new Map<string, number>()
  private readonly evidenceSent = new Set<string>()
  private readonly relayed = new Set<string>()
  /**
   * Proposals for the next height that arrived while this node was still finishing the current
   * one, with when they arrived: checked once the node gets there, and judged timely by their
   * arrival (not by the proposer's next re-send, which may come seconds later). Bounded.
   */
  private early = new Map<string, EarlyProposal>()
  private earlyDue: EarlyProposal[] = []
  private stopped = false

  constructor(env: DriverEnv, init: DriverInit) {
    this.env = env
    this.init = { relay: false, rebroadcastMs: 1_000, maxBlocksPerAnswer: 16, clock: DEFAULT_CLOCK_BOUNDS, ...init }
    this.chain = init.state
    this.lastCommit = init.lastCommit ?? null
    this.core = createConsensusState(
      { chainId: init.state.chainId, self: init.signer?.address ?? null, timeouts: init.timeouts },
      init.state.height + 1,
      init.state.validators,
      init.locks
    )
  }

  get state(): ChainState {
    return this.chain
  }

  get consensus(): Readonly<ConsensusState> {
    return this.core
  }

  start(): void {
    this.heightStartedAt = this.env.now()
    this.replayOwn()
    this.input({ type: 'start' })
    this.tick()
  }

  /** After a restart: take back the messages signed before it, and send them again. */
  private replayOwn(): void {
    const saved = this.init.own
    if (saved == null || saved.height !== this.core.height) return
    for (const msg of saved.messages) {
      if (msg.kind === 'proposal') {
        const valid = this.checkCandidate(msg.proposal.blockHash, msg.block)
        this.own.set(`p:${msg.proposal.round}`, msg)
        this.input({ type: 'proposal', proposal: msg.proposal, valid })
      } else if (msg.kind === 'vote') {
        this.own.set(`${msg.vote.type}:${msg.vote.round}`, msg)
        this.input({ type: 'vote', vote: msg.vote })
      }
      this.env.broadcast(msg)
    }
  }

  /** Records a message this node signed, durably, before it is sent. */
  private keepOwn(key: string, msg: ConsensusMessage): void {
    this.own.set(key, msg)
    this.env.persistOwn({ height: this.core.height, messages: [...this.own.values()] })
  }

  /** Stops timers from acting (a crashed or stopped node). */
  stop(): void {
    this.stopped = true
  }

  private tick(): void {
    this.env.setTimer(this.init.rebroadcastMs, () => {
      if (this.stopped) return
      for (const msg of this.own.values()) this.env.broadcast(msg)
      this.rebroadcastPolka()
      this.tick()
    })
  }

  /**
   * Re-sends the prevotes of the polka behind this node's valid value, as CometBFT gossips a
   * proposal's POL prevotes to peers that lack them. A re-proposal (validRound ≥ 0) is prevoted
   * only by validators that hold that polka (L28), and a vote relayed once can be lost for good:
   * an equivocator sends half the validators the other vote, so they get its polka vote only
   * through others (the simulation found this). At most one vote per validator per tick.
   */
  private rebroadcastPolka(): void {
    const { validRound, validHash } = this.core
    if (validRound < 0 || validHash == null) return
    for (const vote of this.core.rounds.get(validRound)?.prevote.votesFor(validHash) ?? []) {
      if (vote.validator !== this.init.signer?.address) this.env.broadcast({ kind: 'vote', vote })
    }
  }

  /** A message from peer `from`. Invalid messages are dropped; returns whether it was accepted. */
  onMessage(from: string, msg: ConsensusMessage): boolean {
    if (this.stopped) return false
    switch (msg.kind) {
      case 'vote':
        return this.onVote(from, msg.vote)
      case 'proposal':
        return this.onProposal(from, msg.proposal, msg.block)
      case 'block-request':
        this.answerSync(from, msg.fromHeight)
        return true
      case 'blocks':
        return this.onBlocks(msg.blocks)
    }
  }

  private behind(from: string, height: number): void {
    // the peer is still on a height we finished: send it what it lacks (rate-limited per peer)
    if (height <= this.chain.height) this.answerSync(from, height)
    // the peer is beyond the next height: we missed a block
    if (height > this.chain.height + 1 && this.env.now() - this.lastSyncRequest > this.init.timeouts.proposeMs) {
      this.lastSyncRequest = this.env.now()
      this.env.log?.('behind: requesting blocks', { from, height, have: this.chain.height })
      this.env.send(from, { kind: 'block-request', fromHeight: this.chain.height + 1 })
    }
  }

  private onVote(from: string, vote: SignedVote): boolean {
    if (vote.height !== this.core.height) {
      this.behind(from, vote.height)
      if (vote.height !== this.core.height + 1) return false
    }
    if (!verifyVote(vote, this.init.verifier)) return false
    const fresh = this.isFresh(vote)
    this.input({ type: 'vote', vote })
    if (fresh && this.init.relay) this.env.broadcast({ kind: 'vote', vote })
    return true
  }

  /** True the first time this exact vote is seen at the current height (so it is relayed once). */
  private isFresh(vote: SignedVote): boolean {
    if (vote.height !== this.core.height) return false
    const key = `${vote.validator}:${vote.round}:${vote.type}:${vote.blockHash}`
    if (this.relayed.has(key) || this.relayed.size >= MAX_RELAYED_PER_HEIGHT) return false
    this.relayed.add(key)
    return true
  }

  private onProposal(from: string, proposal: SignedProposal, block: Block, receivedAt = this.env.now()): boolean {
    // timeliness is judged by when the proposal arrived, not by when checking its block ended
    // (a large block can take a loaded node seconds to check)
    if (proposal.height !== this.core.height) {
      this.behind(from, proposal.height)
      if (proposal.height === this.core.height + 1) this.keepEarly(from, proposal, block, receivedAt)
      return false
    }
    if (!verifyProposal(proposal, this.init.verifier)) return false
    const hash = blockHash(block.header)
    if (hash !== proposal.blockHash) return false
    const key = `p:${proposal.round}:${hash}`
    const fresh = !this.relayed.has(key)
    this.relayed.add(key)
    // a block first proposed in this round must carry a time near our clock; a re-proposal
    // (validRound ≥ 0) had its time accepted by two thirds of the power in an earlier round
    const timely = proposal.validRound >= 0 || this.timely(block.header.time, proposal.round, receivedAt)
    const valid = this.checkCandidate(hash, block)
    this.input({ type: 'proposal', proposal, valid, timely })
    if (fresh && this.init.relay) this.env.broadcast({ kind: 'proposal', proposal, block })
    return true
  }

  /** Keeps a signed proposal for the next height (at most MAX_EARLY_PROPOSALS, first come). */
  private keepEarly(from: string, proposal: SignedProposal, block: Block, receivedAt: number): void {
    const key = `${proposal.round}:${proposal.blockHash}`
    if (this.early.has(key) || this.early.size >= MAX_EARLY_PROPOSALS || this.chain.nextValidators.length === 0) return
    // the next height is decided by the set the chain already names (`nextValidators`)
    const proposer = proposerFor(this.chain.chainId, this.chain.nextValidators, proposal.height, proposal.round)
    if (proposal.proposer !== proposer || !verifyProposal(proposal, this.init.verifier)) return
    this.early.set(key, { from, proposal, block, receivedAt })
  }

  /** Proposer-based time: the block time is within the clock bounds of this node's clock at `now`. */
  private timely(time: number, round: number, now: number): boolean {
    const { precisionMs, msgDelayMs } = this.init.clock
    const ok = time <= now + precisionMs && time >= now - precisionMs - msgDelayMs * (round + 1)
    if (!ok) this.env.log?.('untimely proposal', { time, now, round })
    return ok
  }

  private checkCandidate(hash: string, block: Block): boolean {
    const known = this.candidates.get(hash)
    if (known != null) return known.state != null
    let state: ChainState | null = null
    try {
      state = applyBlock(this.chain, block, { verifier: this.init.verifier, txCache: this.init.txCache }).state
    } catch (err) {
      if (!(err instanceof BlockError)) throw err
      this.env.log?.('invalid block', { hash, reason: err.message })
    }
    this.candidates.set(hash, { block, state })
    return state != null
  }

  private answerSync(from: string, fromHeight: number): void {
    const key = `${from}:${fromHeight}`
    const last = this.answered.get(key) ?? -Infinity
    if (this.env.now() - last < this.init.timeouts.proposeMs) return
    if (this.answered.size > 1_000) this.answered.clear()
    this.answered.set(key, this.env.now())
    this.sendBlocks(from, fromHeight)
  }

  /** Sends blocks from `fromHeight` on; synchronous when the block source is (the simulation). */
  private sendBlocks(from: string, fromHeight: number): void {
    const blocks: Array<{ block: Block; commit: Commit }> = []
    const top = this.chain.height
    const max = this.init.maxBlocksPerAnswer
    const finish = (): void => {
      if (blocks.length > 0 && !this.stopped) this.env.send(from, { kind: 'blocks', blocks })
    }
    const collect = (h: number): void => {
      for (; h <= top && blocks.length < max; h++) {
        const b = this.env.loadBlock(h)
        if (b instanceof Promise) {
          const next = h + 1
          b.then((v) => {
            if (v == null) return finish()
            blocks.push(v)
            collect(next)
          }, finish)
          return
        }
        if (b == null) break
        blocks.push(b)
      }
      finish()
    }
    collect(Math.max(1, fromHeight))
  }

  private onBlocks(blocks: Array<{ block: Block; commit: Commit }>): boolean {
    this.env.log?.('blocks received', { heights: blocks.map((b) => b.block.header.height), have: this.chain.height })
    let progressed = false
    for (const { block, commit } of blocks) {
      if (block.header.height !== this.chain.height + 1) continue
      const hash = blockHash(block.header)
      if (commit.blockHash !== hash || commit.height !== block.header.height) return progressed
      if (checkCommit(commit, this.chain.validators, this.chain.chainId, this.init.verifier) != null) return progressed
      let state: ChainState
      try {
        state = applyBlock(this.chain, block, { verifier: this.init.verifier, txCache: this.init.txCache }).state
      } catch (err) {
        if (!(err instanceof BlockError)) throw err
        return progressed
      }
      this.finishHeight({ block, hash, commit, state })
      progressed = true
    }
    if (progressed) this.scheduleStart()
    return progressed
  }

  private input(input: ConsensusInput): void {
    this.queue.push(input)
    if (this.running) return
    this.running = true
    try {
      for (let i = 0; i < 100_000; i++) {
        let next = this.queue.shift()
        if (next == null && this.replayEarly()) next = this.queue.shift()
        if (next == null) return
        for (const effect of stepConsensus(this.core, next)) this.perform(effect)
      }
      throw new Error('invariant: consensus input queue did not drain')
    } finally {
      this.running = false
    }
  }

  private perform(effect: ConsensusEffect): void {
    switch (effect.type) {
      case 'get-value': {
        const built = buildBlock(this.chain, {
          proposer: this.init.signer?.address ?? '',
          time: this.env.now(),
          lastCommit: this.lastCommit,
          candidates: this.env.mempool(),
          verifier: this.init.verifier,
          txCache: this.init.txCache
        })
        this.candidates.set(built.hash, { block: built.block, state: built.state })
        this.queue.push({ type: 'value', height: effect.height, round: effect.round, blockHash: built.hash })
        return
      }
      case 'persist':
        this.env.persistLocks(effect.locks)
        return
      case 'propose': {
        const p = effect.proposal
        const block = this.candidates.get(p.blockHash)?.block
        if (block == null || !this.guarded(p.height, p.round, SIGN_STEP.proposal, p.blockHash)) return
        const signed = signProposal(p, this.init.signer as Signer)
        const msg: ConsensusMessage = { kind: 'proposal', proposal: signed, block }
        this.keepOwn(`p:${p.round}`, msg)
        this.env.broadcast(msg)
        this.queue.push({ type: 'proposal', proposal: signed, valid: true })
        return
      }
      case 'vote': {
        const v = effect.vote
        if (!this.guarded(v.height, v.round, SIGN_STEP[v.type], v.blockHash)) return
        const signed = signVote(v, this.init.signer as Signer)
        const msg: ConsensusMessage = { kind: 'vote', vote: signed }
        this.keepOwn(`${v.type}:${v.round}`, msg)
        this.env.broadcast(msg)
        this.queue.push({ type: 'vote', vote: signed })
        return
      }
      case 'schedule-timeout':
        this.env.setTimer(effect.ms, () => {
          if (!this.stopped) this.input({ type: 'timeout', kind: effect.kind, height: effect.height, round: effect.round })
        })
        return
      case 'decide': {
        const c = this.candidates.get(effect.blockHash)
        if (c?.state == null) throw new Error('invariant: decided a block that was not checked')
        const commit: Commit = { height: effect.height, round: effect.round, blockHash: effect.blockHash, precommits: effect.precommits }
        this.finishHeight({ block: c.block, hash: effect.blockHash, commit, state: c.state })
        this.scheduleStart()
        return
      }
      case 'need-block':
        this.env.broadcast({ kind: 'block-request', fromHeight: effect.height })
        return
      case 'evidence': {
        const key = `${effect.a.validator}:${effect.a.height}`
        if (this.evidenceSent.has(key)) return
        this.evidenceSent.add(key)
        this.env.evidence(effect.a, effect.b)
        return
      }
    }
  }

  /** Signs only what the guard allows, recording it durably first. */
  private guarded(height: number, round: number, step: number, hash: string | null): boolean {
    const guard = this.init.guard
    if (guard == null || this.init.signer == null) return false
    const point = { height, round, step, blockHash: hash }
    if (!allowSign(guard.last(), point)) {
      this.env.log?.('double-sign guard refused', { height, round, step })
      return false
    }
    guard.record(point)
    return true
  }

  private finishHeight(committed: CommittedBlock): void {
    this.env.commitBlock(committed)
    this.chain = committed.state
    this.lastCommit = committed.commit
    this.candidates = new Map()
    this.own.clear()
    this.relayed.clear()
    this.queue.length = 0
    // checked once the core is at the new height (when the input queue has drained)
    this.earlyDue = [...this.early.values()]
    this.early = new Map()
    this.input({ type: 'new-height', height: committed.state.height + 1, validators: committed.state.validators })
  }

  /** Takes the early proposals of the height just entered; true if there were any. */
  private replayEarly(): boolean {
    const due = this.earlyDue
    if (due.length === 0) return false
    this.earlyDue = []
    for (const e of due) if (e.proposal.height === this.core.height) this.onProposal(e.from, e.proposal, e.block, e.receivedAt)
    return true
  }

  /** Starts the next height so that blocks come about `blockTimeMs` apart. */
  private scheduleStart(): void {
    const height = this.chain.height + 1
    const wait = Math.max(0, this.chain.params.blockTimeMs - (this.env.now() - this.heightStartedAt))
    this.env.setTimer(wait, () => {
      if (this.stopped || this.core.height !== height || this.core.step !== 'new-height') return
      this.heightStartedAt = this.env.now()
      this.input({ type: 'start' })
    })
  }
}
