import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  applyBlock,
  applyTx,
  buildBlock,
  type ChainState,
  checkParams,
  decodeState,
  decodeTx,
  encodeState,
  encodeTx,
  FIXED_PARAMS,
  GOV_CHOICES,
  GOVERNABLE_PARAMS,
  type GovChoice,
  type GovProposal,
  genesisState,
  MAX_FINISHED_PROPOSALS,
  MAX_OPEN_PROPOSALS_PER_PROPOSER,
  Mempool,
  type SignedTx,
  signTx,
  stateRoot,
  type TxBody,
  tallyProposal,
  totalSupply
} from '../../src/chain/index.ts'
import { SignatureVerifier, type Signer } from '../../src/crypto/index.ts'
import { CHAIN_PARAM_BOUNDS, type ChainParams } from '../../src/params/index.ts'
import { makeGenesis, makeSigners, tx } from './fixtures.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 100)
console.log(`governance properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const verifier = new SignatureVerifier(10_000)
const signers = makeSigners(6)
// signers 0-3 validate with 10,000 each (quorum 33.4% is two of them); 4 may stake as a host; 5 stakes nothing
const [v0, v1, v2, v3, hostSigner, outsider] = signers as [Signer, Signer, Signer, Signer, Signer, Signer]
const VOTING_BLOCKS = 3

function govState(params: Record<string, unknown> = {}): ChainState {
  const g = makeGenesis(signers, 4)
  return genesisState({ ...g, params: { ...g.params, govVotingBlocks: VOTING_BLOCKS, ...params } }, verifier)
}

const propose = (changes: Array<[string, string]>, applyHeight: number): TxBody => ({ type: 'gov-propose', changes, applyHeight })
const vote = (proposal: number, choice: GovChoice): TxBody => ({ type: 'gov-vote', proposal, choice })

function apply(state: ChainState, t: SignedTx): ChainState {
  const r = applyTx(state, t, { height: state.height + 1, verifier })
  if (!r.ok) throw r.error
  return r.state
}

function refused(state: ChainState, t: SignedTx, code: string, message?: RegExp): void {
  const before = stateRoot(state)
  const r = applyTx(state, t, { height: state.height + 1, verifier })
  assert.equal(r.ok, false, `expected ${code}`)
  if (!r.ok) {
    assert.equal(r.error.code, code, r.error.message)
    if (message != null) assert.match(r.error.message, message)
  }
  assert.equal(stateRoot(state), before, 'a refused transaction changes nothing')
}

/** The next block with these transactions (each must apply), built by v0. */
function block(state: ChainState, txs: Array<(s: ChainState) => SignedTx> = []): ChainState {
  // sign each against the state so far, so one sender's nonces follow each other
  let draft = state
  const raws: Uint8Array[] = []
  for (const make of txs) {
    const t = make(draft)
    draft = apply(draft, t)
    raws.push(encodeTx(t))
  }
  const built = buildBlock(state, { proposer: v0.address, time: state.lastBlockTime + 1_000, lastCommit: null, candidates: raws, verifier })
  assert.deepEqual(
    built.rejected.map((r) => r.error.message),
    []
  )
  return built.state
}

const proposal = (s: ChainState, id: number): GovProposal => {
  const p = s.proposals.get(id)
  assert.ok(p != null, `proposal ${id} exists`)
  return p
}

test('a proposal with an out-of-range, fixed or unknown parameter is refused at submission with the reason, and changes nothing', () => {
  const s = govState()
  const at = s.height + 1 + VOTING_BLOCKS
  refused(
    s,
    tx(s, v0, propose([['baseFee', String(2n ** 40n + 1n)]], at)),
    'PARAM_OUT_OF_RANGE',
    /baseFee = 1099511627777 is outside \[0, 1099511627776\]/
  )
  refused(s, tx(s, v0, propose([['slashFractionBps', '10001']], at)), 'PARAM_OUT_OF_RANGE', /slashFractionBps/)
  refused(s, tx(s, v0, propose([['blockTimeMs', '50']], at)), 'PARAM_OUT_OF_RANGE', /blockTimeMs = 50/)
  refused(s, tx(s, v0, propose([['govThresholdBps', '4000']], at)), 'PARAM_OUT_OF_RANGE', /govThresholdBps/)
  // each within bounds, but together over 100%
  refused(s, tx(s, v0, propose([['hostShareBps', '9000']], at)), 'PARAM_OUT_OF_RANGE', /hostShareBps \+ validatorShareBps = 11000/)
  refused(s, tx(s, v0, propose([['minMultiplier', '200000000']], at)), 'PARAM_OUT_OF_RANGE', /minMultiplier 200000000 is over/)
  // a minimum stake no validator meets would leave no one to make blocks
  refused(s, tx(s, v0, propose([['minValidatorStake', '10001']], at)), 'PARAM_OUT_OF_RANGE', /no validator would be left/)
  refused(s, tx(s, v0, propose([['maxBlockBytes', '2048']], at)), 'PARAM_NOT_GOVERNABLE', /maxBlockBytes is fixed/)
  refused(s, tx(s, v0, propose([['chainId', '1']], at)), 'PARAM_NOT_GOVERNABLE', /chainId is not a chain parameter/)
  refused(
    s,
    tx(
      s,
      v0,
      propose(
        [
          ['baseFee', '20'],
          ['baseFee', '30']
        ],
        at
      )
    ),
    'MALFORMED',
    /twice/
  )
  // the apply height must not come before the end of voting
  refused(s, tx(s, v0, propose([['baseFee', '20']], at - 1)), 'BAD_APPLY_HEIGHT', new RegExp(`end of voting at ${at}`))
  // only stakers propose
  refused(s, tx(s, outsider, propose([['baseFee', '20']], at)), 'NOT_A_STAKER')
  // the mempool refuses it on arrival with the same reason
  const pool = new Mempool(s, { maxTxs: 10, maxBytes: 1 << 20 }, verifier)
  const added = pool.add(encodeTx(tx(s, v0, propose([['baseFee', String(2n ** 41n)]], at))))
  assert.equal(added.ok, false)
  if (!added.ok) assert.equal(added.error.code, 'PARAM_OUT_OF_RANGE')
  // values that are not canonical decimal strings do not even decode
  for (const value of ['-1', '01', '1.5', '', '123456789012345678901']) {
    const bad = signTx({ chainId: s.chainId, from: v0.address, nonce: 0, fee: 0n, body: propose([['baseFee', value]], at) }, v0)
    assert.throws(() => decodeTx(encodeTx(bad), 4096), /not a transaction: body\.changes/, value)
  }
  // a host stake is enough to propose
  let h = apply(s, tx(s, hostSigner, { type: 'stake', role: 'host', amount: 100n }))
  h = apply(h, tx(h, hostSigner, propose([['baseFee', '20']], at)))
  assert.equal(proposal(h, 0).proposer, hostSigner.address)
  assert.equal(checkParams(s.params), null)
  assert.deepEqual([...FIXED_PARAMS].sort(), ['maxBlockBytes', 'maxBlockTxs', 'maxTxBytes'])
  assert.ok(GOVERNABLE_PARAMS.includes('baseFee') && GOVERNABLE_PARAMS.includes('govQuorumBps'))
})

test('only validators of the snapshot vote, while voting is open; a later vote replaces an earlier one', () => {
  let s = govState()
  s = block(s, [(x) => tx(x, v0, propose([['baseFee', '20']], x.height + 1 + VOTING_BLOCKS))])
  const p = proposal(s, 0)
  assert.equal(p.votingEndHeight, 1 + VOTING_BLOCKS)
  assert.deepEqual(
    p.snapshot.map((v) => v.address),
    s.validators.map((v) => v.address)
  )
  refused(s, tx(s, outsider, vote(0, 'yes')), 'NOT_A_VOTER', /was not a validator when proposal 0 was made/)
  refused(s, tx(s, v0, vote(7, 'yes')), 'UNKNOWN_PROPOSAL')
  // a validator that joins after the snapshot has no vote on it
  s = block(s, [(x) => tx(x, outsider, { type: 'stake', role: 'validator', amount: 50_000n })])
  s = block(s)
  assert.ok(
    s.validators.some((v) => v.address === outsider.address),
    'the outsider now validates'
  )
  refused(s, tx(s, outsider, vote(0, 'yes')), 'NOT_A_VOTER')
  s = block(s, [(x) => tx(x, v1, vote(0, 'no')), (x) => tx(x, v1, vote(0, 'yes'))])
  assert.equal(proposal(s, 0).votes.get(v1.address), 'yes')
  assert.equal(s.height, p.votingEndHeight, 'the last block of voting')
  refused(s, tx(s, v2, vote(0, 'yes')), 'VOTING_CLOSED', /ended at height 4/)
})

test('a proposal with quorum and threshold passes and changes the base fee exactly at its apply height, on every node', () => {
  const genesis = govState()
  let s = genesis
  const blocks = [] as Array<ReturnType<typeof buildBlock>['block']>
  const next = (txs: Array<(x: ChainState) => SignedTx> = []) => {
    let draft = s
    const raws = txs.map((make) => {
      const t = make(draft)
      draft = apply(draft, t)
      return encodeTx(t)
    })
    const built = buildBlock(s, { proposer: v0.address, time: s.lastBlockTime + 1_000, lastCommit: null, candidates: raws, verifier })
    assert.equal(built.rejected.length, 0)
    blocks.push(built.block)
    s = built.state
  }
  const applyHeight = 1 + VOTING_BLOCKS + 2
  next([
    (x) =>
      tx(
        x,
        v0,
        propose(
          [
            ['baseFee', '20'],
            ['govVotingBlocks', '5']
          ],
          applyHeight
        )
      )
  ])
  // 2 of 4 validators vote yes, 1 abstains (after first saying no): 75% voted, yes 100% of yes + no
  next([(x) => tx(x, v0, vote(0, 'yes')), (x) => tx(x, v1, vote(0, 'yes')), (x) => tx(x, v2, vote(0, 'no'))])
  next([(x) => tx(x, v2, vote(0, 'abstain'))])
  assert.equal(proposal(s, 0).status, 'voting')
  next()
  assert.equal(s.height, proposal(s, 0).votingEndHeight)
  assert.equal(proposal(s, 0).status, 'passed')
  assert.deepEqual(proposal(s, 0).tally, { yes: 20_000n, no: 0n, abstain: 10_000n, total: 40_000n })
  assert.equal(s.params.baseFee, 10n, 'passed, not yet applied')
  next()
  assert.equal(s.height, applyHeight - 1)
  assert.equal(s.params.baseFee, 10n)
  next()
  assert.equal(s.height, applyHeight)
  assert.equal(s.params.baseFee, 20n, 'the new base fee rules from the block after the apply height')
  assert.equal(s.params.govVotingBlocks, 5)
  assert.equal(proposal(s, 0).status, 'applied')
  assert.equal(totalSupply(s), totalSupply(genesis))
  // another node applying the same blocks reaches the same state
  let other = genesis
  for (const b of blocks) other = applyBlock(other, b, { verifier, trustLastCommit: true }).state
  assert.equal(stateRoot(other), stateRoot(s))
  assert.equal(other.params.baseFee, 20n)
  const back = decodeState(encodeState(s))
  assert.equal(stateRoot(back), stateRoot(s))
})

test('a proposal that misses quorum or threshold is rejected and changes nothing', () => {
  const cases: Array<{ name: string; votes: Array<[Signer, GovChoice]> }> = [
    { name: 'one of four votes: no quorum', votes: [[v0, 'yes']] },
    {
      name: 'a tie: yes is not more than half',
      votes: [
        [v0, 'yes'],
        [v1, 'no']
      ]
    },
    {
      name: 'everyone abstains',
      votes: [
        [v0, 'abstain'],
        [v1, 'abstain'],
        [v2, 'abstain'],
        [v3, 'abstain']
      ]
    },
    { name: 'nobody votes', votes: [] }
  ]
  for (const c of cases) {
    let s = govState()
    const params = s.params
    const at = 1 + VOTING_BLOCKS
    s = block(s, [(x) => tx(x, v1, propose([['baseFee', '99']], at))])
    s = block(
      s,
      c.votes.map(
        ([who, choice]) =>
          (x: ChainState) =>
            tx(x, who, vote(0, choice))
      )
    )
    while (s.height < at) s = block(s)
    assert.equal(proposal(s, 0).status, 'rejected', c.name)
    assert.deepEqual(s.params, params, c.name)
    s = block(s)
    assert.deepEqual(s.params, params, c.name)
  }
})

test('passed proposals that fit alone but not together: the later one fails and the bounds hold', () => {
  let s = govState()
  const at = 1 + VOTING_BLOCKS
  // 7,500 + 2,000 and 7,000 + 2,600 fit; 7,500 + 2,600 is over 10,000
  s = block(s, [(x) => tx(x, v0, propose([['hostShareBps', '7500']], at)), (x) => tx(x, v1, propose([['validatorShareBps', '2600']], at))])
  const yes = signers.slice(0, 3).flatMap((who) => [0, 1].map((id) => (x: ChainState) => tx(x, who, vote(id, 'yes'))))
  s = block(s, yes)
  while (s.height < at) s = block(s)
  assert.equal(proposal(s, 0).status, 'applied')
  assert.equal(proposal(s, 1).status, 'failed')
  assert.match(proposal(s, 1).failure ?? '', /hostShareBps \+ validatorShareBps = 10100/)
  assert.equal(s.params.hostShareBps, 7_500)
  assert.equal(s.params.validatorShareBps, 2_000)
  assert.equal(checkParams(s.params), null)
})

test('jailed validators count for nothing in a tally', () => {
  const p: GovProposal = {
    id: 0,
    proposer: v0.address,
    changes: [['baseFee', '1']],
    height: 1,
    votingEndHeight: 2,
    applyHeight: 2,
    snapshot: [v0, v1, v2].map((v) => ({ address: v.address, power: 10n })),
    votes: new Map<string, GovChoice>([
      [v0.address, 'yes'],
      [v1.address, 'no']
    ]),
    status: 'voting',
    tally: null,
    failure: null
  }
  assert.deepEqual(tallyProposal(p, new Set()), { yes: 10n, no: 10n, abstain: 0n, total: 30n })
  assert.deepEqual(tallyProposal(p, new Set([v1.address])), { yes: 10n, no: 0n, abstain: 0n, total: 20n })
})

test('open proposals are bounded per proposer, and finished ones are pruned to the most recent', () => {
  let s = govState({ govVotingBlocks: 1 })
  const at = (x: ChainState) => x.height + 2
  const twice = [0, 1].map(() => (x: ChainState) => tx(x, v0, propose([['baseFee', '11']], at(x))))
  s = block(s, twice)
  refused(
    s,
    tx(s, v0, propose([['baseFee', '12']], at(s))),
    'TOO_MANY_PROPOSALS',
    new RegExp(`has ${MAX_OPEN_PROPOSALS_PER_PROPOSER} open`)
  )
  s = block(s)
  // four proposers, two each every other block; every one is rejected (nobody votes) at the end of the next block
  while (s.nextProposalId < MAX_FINISHED_PROPOSALS + 20) {
    s = block(
      s,
      [v0, v1, v2, v3].flatMap((who) => [0, 1].map(() => (x: ChainState) => tx(x, who, propose([['baseFee', '11']], at(x)))))
    )
    s = block(s)
  }
  const finished = [...s.proposals.values()].filter((p) => p.status !== 'voting' && p.status !== 'passed')
  assert.equal(finished.length, MAX_FINISHED_PROPOSALS)
  assert.equal(Math.min(...s.proposals.keys()), s.nextProposalId - MAX_FINISHED_PROPOSALS, 'the oldest are dropped')
})

// ---- property: random proposals, votes and blocks

const PARAM_NAMES = [...GOVERNABLE_PARAMS, ...FIXED_PARAMS, 'nope'] as const
const bounds = CHAIN_PARAM_BOUNDS as Record<string, [number | bigint, number | bigint]>

const changeArb: fc.Arbitrary<[string, string]> = fc
  .record({ name: fc.constantFrom(...PARAM_NAMES), pick: fc.nat(9), r: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) })
  .map(({ name, pick, r }) => {
    const [lo, hi] = (bounds[name] ?? [0, 10]).map((v) => BigInt(v)) as [bigint, bigint]
    // mostly within bounds (small values, which make the chain interesting, more often), sometimes just outside
    if (pick === 0) return [name, String(hi + 1n)]
    if (pick === 1 && lo > 0n) return [name, String(lo - 1n)]
    if (pick <= 7) return [name, String(lo + (r % (hi - lo + 1n < 20_000n ? hi - lo + 1n : 20_000n)))]
    return [name, String(lo + (r % (hi - lo + 1n)))]
  })

type Op =
  | { kind: 'propose'; who: number; changes: Array<[string, string]>; delay: number }
  /** `proposal` counts back from the latest proposal. */
  | { kind: 'vote'; who: number; proposal: number; choice: GovChoice }
  | { kind: 'stake'; who: number; role: 'validator' | 'host'; amount: bigint }
  | { kind: 'block' }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('propose' as const),
    who: fc.nat(5),
    changes: fc.array(changeArb, { minLength: 1, maxLength: 2 }),
    delay: fc.integer({ min: -1, max: 3 })
  }),
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('vote' as const),
      who: fc.nat(5),
      proposal: fc.nat(3),
      choice: fc.constantFrom<GovChoice>('yes', 'yes', ...GOV_CHOICES)
    })
  },
  fc.record({
    kind: fc.constant('stake' as const),
    who: fc.nat(5),
    role: fc.constantFrom('validator' as const, 'host' as const),
    amount: fc.bigInt({ min: 0n, max: 30_000n })
  }),
  { weight: 3, arbitrary: fc.constant({ kind: 'block' as const }) }
)

test('property: random proposals, votes and blocks conserve supply, keep every parameter within bounds, and snapshot exactly', () => {
  const outcomes = new Map<string, number>()
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 30, maxLength: 80 }), (ops) => {
      let s = govState({ govVotingBlocks: 2 })
      const supply = totalSupply(s)
      const check = () => {
        // every status a proposal reaches counts, also one it leaves later (passed → applied)
        for (const p of s.proposals.values()) outcomes.set(p.status, (outcomes.get(p.status) ?? 0) + 1)
        assert.equal(totalSupply(s), supply)
        assert.equal(checkParams(s.params), null, 'parameters within bounds')
        assert.ok(s.validators.length > 0, 'a validator set is left')
        const back = decodeState(encodeState(s))
        assert.equal(stateRoot(back), stateRoot(s), 'the snapshot round-trips')
      }
      for (const op of ops) {
        if (op.kind === 'block') {
          s = buildBlock(s, { proposer: v0.address, time: s.lastBlockTime + 1000, lastCommit: null, candidates: [], verifier }).state
          check()
          continue
        }
        const who = signers[op.who] as Signer
        const body: TxBody =
          op.kind === 'propose'
            ? propose(op.changes, s.height + 1 + s.params.govVotingBlocks + op.delay)
            : op.kind === 'vote'
              ? vote(Math.max(0, s.nextProposalId - 1 - op.proposal), op.choice)
              : { type: 'stake', role: op.role, amount: op.amount }
        const r = applyTx(s, tx(s, who, body), { height: s.height + 1, verifier })
        if (!r.ok) continue
        s = r.state
        check()
      }
      // params changed only through applied proposals
      const applied = [...s.proposals.values()].filter((p) => p.status === 'applied')
      if (applied.length === 0 && s.nextProposalId === s.proposals.size) {
        const g = govState({ govVotingBlocks: 2 })
        for (const key of Object.keys(g.params) as Array<keyof ChainParams>) assert.equal(s.params[key], g.params[key], key)
      }
    }),
    { seed, numRuns: runs }
  )
  for (const status of ['voting', 'passed', 'rejected', 'applied'])
    assert.ok((outcomes.get(status) ?? 0) > 0, `the generator never produced a ${status} proposal (${JSON.stringify([...outcomes])})`)
})
