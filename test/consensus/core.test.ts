import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Validator } from '../../src/chain/index.ts'
import {
  allowSign,
  createConsensusState,
  decodeConsensusMessage,
  encodeConsensusMessage,
  proposerFor,
  stepConsensus
} from '../../src/consensus/index.ts'
import { makeSigners } from '../chain/fixtures.ts'

test('the double-sign guard allows only later points, or the identical one again', () => {
  const last = { height: 5, round: 1, step: 1, blockHash: 'a'.repeat(64) }
  assert.equal(allowSign(null, last), true)
  assert.equal(allowSign(last, { ...last }), true, 'the same vote again')
  assert.equal(allowSign(last, { ...last, blockHash: null }), false, 'a different prevote in the same round')
  assert.equal(allowSign(last, { ...last, step: 0 }), false, 'an earlier step')
  assert.equal(allowSign(last, { ...last, round: 0, step: 2 }), false, 'an earlier round')
  assert.equal(allowSign(last, { ...last, height: 4, round: 9 }), false, 'an earlier height')
  assert.equal(allowSign(last, { ...last, step: 2, blockHash: null }), true)
  assert.equal(allowSign(last, { height: 5, round: 2, step: 0, blockHash: 'b'.repeat(64) }), true)
  assert.equal(allowSign(last, { height: 6, round: 0, step: 0, blockHash: 'b'.repeat(64) }), true)
})

test('proposers rotate in proportion to stake, the same on every node', () => {
  const signers = makeSigners(3)
  const validators: Validator[] = signers
    .map((s, i) => ({ address: s.address, power: BigInt((i + 1) * 100) }))
    .sort((a, b) => (a.address < b.address ? -1 : 1))
  const counts = new Map<string, number>()
  for (let h = 1; h <= 6_000; h++) {
    const p = proposerFor('c', validators, h, 0)
    assert.equal(p, proposerFor('c', validators, h, 0))
    counts.set(p, (counts.get(p) ?? 0) + 1)
  }
  for (const v of validators) {
    const share = (counts.get(v.address) ?? 0) / 6_000
    const expected = Number(v.power) / 600
    assert.ok(Math.abs(share - expected) < 0.03, `${v.power} power proposed ${share}, expected ${expected}`)
  }
})

test('a lone validator proposes, votes and decides through the core alone', () => {
  const [signer] = makeSigners(1) as [ReturnType<typeof makeSigners>[number]]
  const validators = [{ address: signer.address, power: 10n }]
  const s = createConsensusState(
    { chainId: 'c', self: signer.address, timeouts: { proposeMs: 100, prevoteMs: 100, precommitMs: 100, deltaMs: 10 } },
    1,
    validators
  )
  let fx = stepConsensus(s, { type: 'start' })
  assert.deepEqual(
    fx.map((e) => e.type),
    ['get-value', 'schedule-timeout']
  )
  const hash = 'c'.repeat(64)
  fx = stepConsensus(s, { type: 'value', height: 1, round: 0, blockHash: hash })
  assert.deepEqual(
    fx.map((e) => e.type),
    ['persist', 'propose']
  )
  const sig = new Uint8Array(64)
  fx = stepConsensus(s, {
    type: 'proposal',
    proposal: { chainId: 'c', height: 1, round: 0, validRound: -1, blockHash: hash, proposer: signer.address, sig },
    valid: true
  })
  const prevote = fx.find((e) => e.type === 'vote')
  assert.ok(prevote?.type === 'vote' && prevote.vote.type === 'prevote' && prevote.vote.blockHash === hash)
  fx = stepConsensus(s, { type: 'vote', vote: { ...prevote.vote, sig } })
  const precommit = fx.find((e) => e.type === 'vote')
  assert.ok(precommit?.type === 'vote' && precommit.vote.type === 'precommit' && precommit.vote.blockHash === hash)
  assert.equal(s.lockedHash, hash)
  fx = stepConsensus(s, { type: 'vote', vote: { ...precommit.vote, sig } })
  const decide = fx.find((e) => e.type === 'decide')
  assert.ok(decide?.type === 'decide' && decide.blockHash === hash && decide.precommits.length === 1)
  assert.equal(s.step, 'commit')
})

test('a prevote for an invalid block is nil, and conflicting votes yield evidence', () => {
  const signers = makeSigners(4)
  const validators = signers.map((s) => ({ address: s.address, power: 10n })).sort((a, b) => (a.address < b.address ? -1 : 1))
  const self = signers[0]?.address ?? ''
  const s = createConsensusState(
    { chainId: 'c', self, timeouts: { proposeMs: 100, prevoteMs: 100, precommitMs: 100, deltaMs: 10 } },
    1,
    validators
  )
  stepConsensus(s, { type: 'start' })
  const proposer = proposerFor('c', validators, 1, 0)
  const sig = new Uint8Array(64)
  if (proposer !== self) {
    const fx = stepConsensus(s, {
      type: 'proposal',
      proposal: { chainId: 'c', height: 1, round: 0, validRound: -1, blockHash: 'd'.repeat(64), proposer, sig },
      valid: false
    })
    const v = fx.find((e) => e.type === 'vote')
    assert.ok(v?.type === 'vote' && v.vote.blockHash === null, 'nil prevote for an invalid block')
  }
  const other = signers[1]?.address ?? ''
  const base = { chainId: 'c', height: 1, round: 0, type: 'prevote' as const, validator: other, sig }
  assert.deepEqual(stepConsensus(s, { type: 'vote', vote: { ...base, blockHash: 'e'.repeat(64) } }), [])
  const fx = stepConsensus(s, { type: 'vote', vote: { ...base, blockHash: null } })
  assert.deepEqual(
    fx.map((e) => e.type),
    ['evidence']
  )
})

test('an untimely proposal gets a nil prevote, yet its block is locked on +2/3 prevotes and decided on +2/3 precommits', () => {
  const signers = makeSigners(4)
  const validators = signers.map((s) => ({ address: s.address, power: 10n })).sort((a, b) => (a.address < b.address ? -1 : 1))
  const proposer = proposerFor('c', validators, 1, 0)
  // this node: a validator that is not the proposer of round 0 (its clock disagrees with the block time)
  const self = validators.find((v) => v.address !== proposer)?.address ?? ''
  const others = validators.map((v) => v.address).filter((a) => a !== self)
  const s = createConsensusState(
    { chainId: 'c', self, timeouts: { proposeMs: 100, prevoteMs: 100, precommitMs: 100, deltaMs: 10 } },
    1,
    validators
  )
  stepConsensus(s, { type: 'start' })
  const sig = new Uint8Array(64)
  const blockHash = 'd'.repeat(64)
  const proposal = { chainId: 'c', height: 1, round: 0, validRound: -1, blockHash, proposer, sig }
  const prevote = stepConsensus(s, { type: 'proposal', proposal, valid: true, timely: false }).find((e) => e.type === 'vote')
  assert.ok(prevote?.type === 'vote' && prevote.vote.blockHash === null, 'nil prevote for an untimely block')
  // the three others prevoted the block: a polka for a valid block, whatever this node's clock said
  const vote = (validator: string, type: 'prevote' | 'precommit') => ({
    chainId: 'c',
    height: 1,
    round: 0,
    type,
    blockHash,
    validator,
    sig
  })
  const fx = others.flatMap((v) => stepConsensus(s, { type: 'vote', vote: vote(v, 'prevote') }))
  const precommit = fx.find((e) => e.type === 'vote' && e.vote.type === 'precommit')
  assert.ok(precommit?.type === 'vote' && precommit.vote.blockHash === blockHash, 'locks and precommits the block')
  const decided = others.flatMap((v) => stepConsensus(s, { type: 'vote', vote: vote(v, 'precommit') }))
  assert.ok(
    decided.some((e) => e.type === 'decide' && e.blockHash === blockHash),
    'decides it on +2/3 precommits'
  )
})

test('a polka seen only after its round makes it the valid value, which this node re-proposes', () => {
  // the isolated-validator simulation (SIM_SEED=471160): a validator that learned of an earlier
  // round's polka late kept proposing fresh blocks that the validators locked on the polka refused
  const signers = makeSigners(4)
  const validators = signers.map((s) => ({ address: s.address, power: 10n })).sort((a, b) => (a.address < b.address ? -1 : 1))
  const first = proposerFor('c', validators, 1, 0)
  let later = 2
  while (proposerFor('c', validators, 1, later) === first) later++
  const self = proposerFor('c', validators, 1, later)
  const others = validators.map((v) => v.address).filter((a) => a !== self)
  const s = createConsensusState(
    { chainId: 'c', self, timeouts: { proposeMs: 100, prevoteMs: 100, precommitMs: 100, deltaMs: 10 } },
    1,
    validators
  )
  const timeouts = (round: number) =>
    (['propose', 'prevote', 'precommit'] as const).flatMap((kind) => stepConsensus(s, { type: 'timeout', kind, height: 1, round }))
  stepConsensus(s, { type: 'start' })
  // round 0 passes with nothing heard: this node prevotes and precommits nil and moves on
  timeouts(0)
  assert.equal(s.round, 1)
  // then round 0's proposal and a polka for its block arrive
  const sig = new Uint8Array(64)
  const blockHash = 'd'.repeat(64)
  const proposal = { chainId: 'c', height: 1, round: 0, validRound: -1, blockHash, proposer: first, sig }
  stepConsensus(s, { type: 'proposal', proposal, valid: true })
  const fx = others
    .filter((a) => a !== first)
    .concat(first)
    .flatMap((validator) =>
      stepConsensus(s, { type: 'vote', vote: { chainId: 'c', height: 1, round: 0, type: 'prevote', blockHash, validator, sig } })
    )
  assert.equal(s.validRound, 0)
  assert.equal(s.validHash, blockHash)
  assert.equal(s.lockedRound, -1, 'a late polka is not a lock')
  assert.ok(fx.some((e) => e.type === 'persist' && e.locks.validRound === 0 && e.locks.validHash === blockHash))
  assert.ok(!fx.some((e) => e.type === 'vote'), 'no vote for a round already left')
  // as proposer of a later round it re-proposes that block with the polka's round as proof
  let entered: ReturnType<typeof stepConsensus> = []
  for (let round = 1; round < later; round++) entered = timeouts(round)
  assert.equal(s.round, later)
  const propose = entered.find((e) => e.type === 'propose')
  assert.ok(propose?.type === 'propose', 'proposes at once, without building a new block')
  assert.equal(propose.proposal.blockHash, blockHash)
  assert.equal(propose.proposal.validRound, 0)
  assert.ok(!entered.some((e) => e.type === 'get-value'))
})

test('consensus messages round-trip the wire codec; garbage and oversized input are refused', () => {
  const vote = {
    chainId: 'c',
    height: 3,
    round: 1,
    type: 'precommit' as const,
    blockHash: null,
    validator: makeSigners(1)[0]?.address ?? '',
    sig: new Uint8Array(64).fill(7)
  }
  const bytes = encodeConsensusMessage({ kind: 'vote', vote })
  assert.deepEqual(decodeConsensusMessage(bytes), { kind: 'vote', vote })
  assert.throws(() => decodeConsensusMessage(new Uint8Array([1, 2, 3])))
  assert.throws(() => decodeConsensusMessage(bytes, 10), /limit/)
  assert.throws(() => decodeConsensusMessage(encodeConsensusMessage({ kind: 'vote', vote: { ...vote, round: -1 } })))
})
