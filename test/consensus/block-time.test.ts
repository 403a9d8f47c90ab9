import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildBlock, type ChainState, type SignedVote, signProposal, signVote } from '../../src/chain/index.ts'
import { ConsensusDriver, type ConsensusMessage, proposerFor, StoredGuard } from '../../src/consensus/index.ts'
import { SignatureVerifier, type Signer } from '../../src/crypto/index.ts'
import { makeCommit, makeSigners, makeState } from '../chain/fixtures.ts'

const TIMEOUTS = { proposeMs: 60_000, prevoteMs: 60_000, precommitMs: 60_000, deltaMs: 10 }
const CLOCK = { precisionMs: 500, msgDelayMs: 1_000 }

/** A started driver for validator `self` on a clock the test moves (`clock.now`), recording what it broadcasts. */
function startDriver(state: ChainState, self: Signer, verifier: SignatureVerifier) {
  const clock = { now: 1_800_000_000_000 }
  const sent: ConsensusMessage[] = []
  const driver = new ConsensusDriver(
    {
      now: () => clock.now,
      setTimer: () => {},
      broadcast: (msg) => sent.push(msg),
      send: () => {},
      persistLocks: () => {},
      persistOwn: () => {},
      commitBlock: () => {},
      loadBlock: () => undefined,
      mempool: () => [],
      evidence: () => {}
    },
    { state, signer: self, guard: new StoredGuard(self.address, null, () => {}), verifier, timeouts: TIMEOUTS, clock: CLOCK }
  )
  driver.start()
  return { driver, sent, clock }
}

/**
 * One validator (not the proposer of height 1, round 0) receives a fresh proposal whose block
 * time is `offsetMs` from its clock; returns its prevote. `checkMs`: how long checking the block
 * takes on this validator's clock (its clock moves while it checks).
 */
function prevoteFor(offsetMs: number, checkMs = 0): SignedVote {
  const signers = makeSigners(4)
  const verifier = new SignatureVerifier()
  const state = makeState(signers, 4, verifier)
  const proposerAddress = proposerFor(state.chainId, state.validators, 1, 0)
  const proposer = signers.find((s) => s.address === proposerAddress)
  const self = signers.find((s) => s.address !== proposerAddress)
  if (proposer == null || self == null) throw new Error('signers')

  const { driver, sent, clock } = startDriver(state, self, verifier)
  const built = buildBlock(state, { proposer: proposer.address, time: clock.now + offsetMs, lastCommit: null, candidates: [], verifier })
  const proposal = signProposal(
    { chainId: state.chainId, height: 1, round: 0, validRound: -1, blockHash: built.hash, proposer: proposer.address },
    proposer
  )
  // a slow block check: the validator's clock has moved on by the time it is done
  const slowVerifier = verifier.verify.bind(verifier)
  verifier.verify = (...args) => {
    clock.now += checkMs
    checkMs = 0
    return slowVerifier(...args)
  }
  assert.equal(driver.onMessage(proposer.address, { kind: 'proposal', proposal, block: built.block }), true)
  const prevote = sent.find((m) => m.kind === 'vote' && m.vote.type === 'prevote')
  if (prevote?.kind !== 'vote') throw new Error('no prevote')
  return prevote.vote
}

test('a proposal whose block time is outside the bounds of a validator’s clock gets a nil prevote', () => {
  // within [now - precision - msgDelay × (round + 1), now + precision]: a prevote for the block
  for (const offset of [0, 400, -400, -1_400, 500, -1_500]) {
    assert.notEqual(prevoteFor(offset).blockHash, null, `block time ${offset} ms from the clock is timely`)
  }
  // too far ahead, or too far behind: nil
  for (const offset of [501, 5_000, -1_501, -60_000]) {
    assert.equal(prevoteFor(offset).blockHash, null, `block time ${offset} ms from the clock is refused`)
  }
})

test('timeliness is judged when the proposal arrives, not after its block is checked', () => {
  // the proposal's signature check moves the clock 10 s: the block time was timely on arrival
  assert.notEqual(prevoteFor(-100, 10_000).blockHash, null)
})

test('a proposal for the next height that arrives early is checked there, and judged by when it arrived', () => {
  const signers = makeSigners(4)
  const verifier = new SignatureVerifier()
  const state = makeState(signers, 4, verifier)
  const p1 = proposerFor(state.chainId, state.validators, 1, 0)
  const p2 = proposerFor(state.chainId, state.nextValidators, 2, 0)
  const self = signers.find((s) => s.address !== p1 && s.address !== p2)
  const proposer1 = signers.find((s) => s.address === p1)
  const proposer2 = signers.find((s) => s.address === p2)
  if (self == null || proposer1 == null || proposer2 == null) throw new Error('signers')
  const { driver, sent, clock } = startDriver(state, self, verifier)
  const propose = (signer: typeof self, base: typeof state, height: number) => {
    const built = buildBlock(base, { proposer: signer.address, time: clock.now, lastCommit: null, candidates: [], verifier })
    const proposal = signProposal(
      { chainId: state.chainId, height, round: 0, validRound: -1, blockHash: built.hash, proposer: signer.address },
      signer
    )
    return { built, msg: { kind: 'proposal' as const, proposal, block: built.block } }
  }
  const one = propose(proposer1, state, 1)
  assert.equal(driver.onMessage(p1, one.msg), true)
  // the proposal of height 2 arrives (timely) before this node has finished height 1
  clock.now += 1
  const others = signers.filter((x) => x.address !== self.address)
  const twoBuilt = buildBlock(one.built.state, {
    proposer: p2,
    time: clock.now,
    lastCommit: makeCommit(one.built.block, one.built.hash, 0, others),
    candidates: [],
    verifier
  })
  const two = {
    kind: 'proposal' as const,
    proposal: signProposal(
      { chainId: state.chainId, height: 2, round: 0, validRound: -1, blockHash: twoBuilt.hash, proposer: p2 },
      proposer2
    ),
    block: twoBuilt.block
  }
  assert.equal(driver.onMessage(p2, two), false, 'not for this height yet')
  // height 1 is decided 10 s later (precommits of three of the four)
  clock.now += 10_000
  for (const s of others) {
    const vote = signVote(
      { chainId: state.chainId, height: 1, round: 0, type: 'precommit', blockHash: one.built.hash, validator: s.address },
      s
    )
    driver.onMessage(s.address, { kind: 'vote', vote })
  }
  assert.equal(driver.state.height, 1)
  // a block time 10 s old would be refused now, but the proposal arrived in time
  const start = sent.length
  // the driver starts height 2 on its timer (this test's timers never fire): start it by hand
  ;(driver as unknown as { input(i: { type: 'start' }): void }).input({ type: 'start' })
  const prevote = sent.slice(start).find((m) => m.kind === 'vote' && m.vote.type === 'prevote' && m.vote.height === 2)
  assert.ok(prevote?.kind === 'vote')
  assert.equal(prevote.vote.blockHash, twoBuilt.hash)
})
