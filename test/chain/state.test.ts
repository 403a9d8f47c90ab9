import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  applyBlock,
  applyTx,
  buildBlock,
  type ChainState,
  decodeState,
  decodeTx,
  encodeState,
  encodeTx,
  genesisState,
  type SignedTx,
  signVote,
  stateRoot,
  type TxBody,
  totalSupply,
  verifyTxSignature
} from '../../src/chain/index.ts'
import { SignatureVerifier } from '../../src/crypto/index.ts'
import { TREASURY_ADDRESS } from '../../src/params/index.ts'
import { CHAIN_ID, makeCommit, makeGenesis, makeSigners, makeState, tx } from './fixtures.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 60)
console.log(`chain state properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const signers = makeSigners(6)
const verifier = new SignatureVerifier()
const VALIDATORS = 4

/** One step of a random history: a transaction (often invalid on purpose) or an equivocation. */
const opArb = fc.record({
  sender: fc.nat(signers.length - 1),
  recipient: fc.nat(signers.length),
  kind: fc.constantFrom('transfer', 'stake', 'unstake', 'register-model', 'evidence', 'evidence'),
  role: fc.constantFrom('validator' as const, 'host' as const),
  amount: fc.oneof(fc.bigInt(0n, 2_000n), fc.bigInt(0n, 2_000_000n)),
  fee: fc.bigInt(0n, 50n),
  nonceOffset: fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0), fc.integer({ min: -1, max: 2 })),
  corruptSig: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  model: fc.nat(3),
  parent: fc.option(fc.nat(3), { nil: null }),
  heightBack: fc.nat(2)
})

type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never

const CIDS = [
  'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
  'bafkreidivzimqfqtoqxkrpge6bjyhlvxqs3rhe73owtmdulaxr5do5in7u',
  'bafkreib2rxk3rh6kzwq7nhbzzbdqmwmxhqizjiwyxcpbzqlqwnfpcqxm4y',
  'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
]

function bodyFor(op: Op, state: ChainState, height = state.height + 1): TxBody {
  const to = op.recipient === signers.length ? TREASURY_ADDRESS : (signers[op.recipient]?.address ?? TREASURY_ADDRESS)
  switch (op.kind) {
    case 'transfer':
      return { type: 'transfer', to, amount: op.amount }
    case 'stake':
      return { type: 'stake', role: op.role, amount: op.amount }
    case 'unstake':
      return { type: 'unstake', role: op.role, amount: op.amount }
    case 'register-model':
      return {
        type: 'register-model',
        name: `model-${op.model}`,
        cid: CIDS[op.model] as string,
        parent: op.parent == null ? null : (CIDS[op.parent] as string),
        parameters: op.amount
      }
    default: {
      // a (possibly) equivocating validator: two precommits at one height and round
      const offender = signers[op.sender % VALIDATORS]
      if (offender == null) throw new Error('no offender')
      const vote = {
        chainId: CHAIN_ID,
        height: Math.max(1, height - op.heightBack),
        round: 0,
        type: 'precommit' as const,
        validator: offender.address
      }
      const a = signVote({ ...vote, blockHash: 'a'.repeat(64) }, offender)
      const b = signVote({ ...vote, blockHash: op.amount % 5n === 0n ? 'a'.repeat(64) : 'b'.repeat(64) }, offender)
      return { type: 'evidence', a, b }
    }
  }
}

function assertSound(s: ChainState): void {
  for (const [addr, a] of s.accounts) assert.ok(a.balance >= 0n, `balance of ${addr} is negative`)
  for (const [k, v] of s.stakes) assert.ok(v > 0n, `stake ${k} is ${v}`)
  for (const u of s.unbonding) assert.ok(u.amount > 0n, 'an unbonding entry is not positive')
}

test('every transaction sequence conserves supply, keeps balances non-negative and never reuses a nonce', () => {
  const accepted = new Map<string, number>()
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
      let state = makeState(signers, VALIDATORS, verifier)
      const supply = totalSupply(state)
      const used = new Set<string>()
      let height = 0
      for (const op of ops) {
        // heights advance as if each transaction were in its own block, so evidence spans heights
        height++
        const signer = signers[op.sender]
        if (signer == null) throw new Error('no signer')
        let t: SignedTx = tx(state, signer, bodyFor(op, state, height), op.fee, op.nonceOffset)
        if (op.corruptSig) t = { ...t, sig: Uint8Array.from(t.sig, (b, i) => (i === 0 ? b ^ 1 : b)) }
        const rootBefore = stateRoot(state)
        const result = applyTx(state, t, { height, verifier })
        assert.equal(stateRoot(state), rootBefore, 'applyTx modified its input')
        if (!result.ok) {
          assert.equal(typeof result.error.code, 'string')
          continue
        }
        assert.equal(op.nonceOffset, 0, 'a wrong nonce was accepted')
        assert.equal(op.corruptSig, false, 'a bad signature was accepted')
        const key = `${t.from}/${t.nonce}`
        assert.ok(!used.has(key), `nonce reused: ${key}`)
        used.add(key)
        assert.equal(result.state.accounts.get(t.from)?.nonce, t.nonce + 1)
        assertSound(result.state)
        assert.equal(totalSupply(result.state), supply, `supply changed by ${op.kind}`)
        accepted.set(t.body.type, (accepted.get(t.body.type) ?? 0) + 1)
        state = result.state
      }
    }),
    { seed, numRuns: runs }
  )
  // the generator must exercise every kind of transaction, not only refusals
  for (const kind of ['transfer', 'stake', 'unstake', 'register-model', 'evidence'])
    assert.ok((accepted.get(kind) ?? 0) > 0, `no ${kind} was accepted`)
})

test('two nodes applying the same blocks reach the same state root; unbonding returns stake on time; supply is conserved', () => {
  fc.assert(
    fc.property(fc.array(fc.array(opArb, { maxLength: 12 }), { minLength: 1, maxLength: 8 }), (blocks) => {
      let proposerState = makeState(signers, VALIDATORS, verifier)
      let followerState = makeState(signers, VALIDATORS, verifier)
      const supply = totalSupply(proposerState)
      let lastCommit = null
      for (const [i, ops] of blocks.entries()) {
        // evidence can jail every validator: such a chain has halted, which is all it can do
        if (proposerState.validators.length === 0) break
        // each op signed against the state as the proposer sees it before the block
        const candidates = ops.map((op) => {
          const signer = signers[op.sender]
          if (signer == null) throw new Error('no signer')
          return encodeTx(tx(proposerState, signer, bodyFor(op, proposerState), op.fee, op.nonceOffset))
        })
        const proposer = proposerState.validators[i % proposerState.validators.length]?.address ?? ''
        const built = buildBlock(proposerState, { proposer, time: proposerState.lastBlockTime + 2000, lastCommit, candidates, verifier })
        const applied = applyBlock(followerState, built.block, { verifier })
        assert.equal(applied.hash, built.hash)
        assert.equal(stateRoot(applied.state), stateRoot(built.state))
        assert.equal(totalSupply(applied.state), supply)
        assertSound(applied.state)
        for (const u of applied.state.unbonding)
          assert.ok(u.releaseHeight > applied.state.height, 'an unbonding entry was not released on time')
        const voters = signers.filter((s) => proposerState.validators.some((v) => v.address === s.address))
        lastCommit = makeCommit(built.block, built.hash, 0, voters)
        proposerState = built.state
        followerState = applied.state
      }
    }),
    { seed, numRuns: Math.max(10, Math.floor(runs / 3)) }
  )
})

test('random bytes never decode into a valid transaction', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      assert.throws(() => decodeTx(bytes, 4096))
    }),
    { seed, numRuns: 2000 }
  )
})

test('a flipped byte in a signed transaction never yields a different valid transaction', () => {
  const state = makeState(signers, VALIDATORS, verifier)
  const genuine = encodeTx(tx(state, signers[0] ?? assert.fail(), { type: 'transfer', to: signers[1]?.address ?? '', amount: 5n }))
  fc.assert(
    fc.property(fc.nat(genuine.length - 1), fc.integer({ min: 1, max: 255 }), (at, flip) => {
      const bytes = genuine.slice()
      bytes[at] = (bytes[at] ?? 0) ^ flip
      let decoded: SignedTx
      try {
        decoded = decodeTx(bytes, 4096)
      } catch {
        return
      }
      assert.equal(verifyTxSignature(decoded, verifier), false, `byte ${at} ^ ${flip} kept a valid signature`)
    }),
    { seed, numRuns: 1000 }
  )
})

test('refusals name their reason and change nothing', () => {
  const s = makeState(signers, VALIDATORS, verifier)
  const [a, b] = signers as [(typeof signers)[0], (typeof signers)[0]]
  const ctx = { height: 1, verifier }
  const cases: Array<[SignedTx, string]> = [
    [tx(s, a, { type: 'transfer', to: b.address, amount: 10_000_000n }), 'INSUFFICIENT_BALANCE'],
    [tx(s, a, { type: 'transfer', to: b.address, amount: 1n }, 1n, 1), 'WRONG_NONCE'],
    [{ ...tx(s, a, { type: 'transfer', to: b.address, amount: 1n }), chainId: 'other' }, 'WRONG_CHAIN'],
    [{ ...tx(s, a, { type: 'transfer', to: b.address, amount: 1n }), fee: 2n }, 'BAD_SIGNATURE'],
    [tx(s, a, { type: 'transfer', to: 'nobody', amount: 1n }), 'INVALID_ADDRESS'],
    [tx(s, a, { type: 'transfer', to: b.address, amount: 0n }), 'ZERO_AMOUNT'],
    [tx(s, signers[5] ?? a, { type: 'stake', role: 'validator', amount: 10n }), 'BELOW_MIN_STAKE'],
    [tx(s, a, { type: 'unstake', role: 'host', amount: 10n }), 'INSUFFICIENT_STAKE'],
    [tx(s, a, { type: 'unstake', role: 'validator', amount: 9_500n }), 'BELOW_MIN_STAKE'],
    [tx(s, a, { type: 'register-model', name: 'm', cid: CIDS[0] as string, parent: CIDS[1] as string, parameters: 1n }), 'UNKNOWN_PARENT']
  ]
  const root = stateRoot(s)
  for (const [t, code] of cases) {
    const r = applyTx(s, t, ctx)
    assert.equal(r.ok, false, code)
    if (!r.ok) assert.equal(r.error.code, code, r.error.message)
  }
  assert.equal(stateRoot(s), root)
})

test('equivocation evidence slashes to the treasury, jails the validator and removes it from the set one block later', () => {
  let s = makeState(signers, VALIDATORS, verifier)
  const [reporter, offender] = [signers[5], signers[1]] as [(typeof signers)[0], (typeof signers)[0]]
  const vote = { chainId: CHAIN_ID, height: 1, round: 0, type: 'prevote' as const, validator: offender.address }
  const evidence: TxBody = {
    type: 'evidence',
    a: signVote({ ...vote, blockHash: 'a'.repeat(64) }, offender),
    b: signVote({ ...vote, blockHash: null }, offender)
  }
  const treasuryBefore = s.accounts.get(TREASURY_ADDRESS)?.balance ?? 0n
  const r = applyTx(s, tx(s, reporter, evidence, 0n), { height: 1, verifier })
  assert.ok(r.ok, r.ok ? '' : r.error.message)
  s = r.state
  assert.equal((s.accounts.get(TREASURY_ADDRESS)?.balance ?? 0n) - treasuryBefore, 1_000n, '10% of 10,000 slashed')
  assert.ok(s.jailed.has(offender.address))
  assert.equal(s.stakes.get(`validator:${offender.address}`), undefined)
  assert.deepEqual(
    s.unbonding.filter((u) => u.address === offender.address).map((u) => u.amount),
    [9_000n]
  )
  // the same evidence again is refused
  const again = applyTx(s, tx(s, reporter, evidence, 0n), { height: 1, verifier })
  assert.equal(again.ok ? 'ok' : again.error.code, 'DUPLICATE_EVIDENCE')
  // it cannot stake back in as a validator
  const restake = applyTx(s, tx(s, offender, { type: 'stake', role: 'validator', amount: 5_000n }), { height: 1, verifier })
  assert.equal(restake.ok ? 'ok' : restake.error.code, 'JAILED')
  // the set deciding the next block was fixed a block ago; the one after no longer has it
  const next = buildBlock(s, { proposer: signers[0]?.address ?? '', time: s.lastBlockTime + 1, lastCommit: null, candidates: [], verifier })
  assert.ok(next.state.validators.some((v) => v.address === offender.address))
  assert.ok(!next.state.nextValidators.some((v) => v.address === offender.address))
})

test('a genesis with bad values is refused with the field named', () => {
  const g = makeGenesis(signers, 2)
  assert.throws(() => genesisState({ ...g, validators: [] }, verifier), /genesis: validators/)
  assert.throws(() => genesisState({ ...g, accounts: [{ address: 'nope', balance: '1' }] }, verifier), /account nope is not an address/)
  assert.throws(() => genesisState({ ...g, params: { slashFractionBps: 20_000 } }, verifier), /params\.slashFractionBps = 20000/)
  assert.throws(() => genesisState({ ...g, accounts: [{ address: signers[0]?.address, balance: '-5' }] }, verifier), /decimal string/)
})

test('a state snapshot decodes to the same state; damaged snapshots are refused', () => {
  let s = makeState(signers, VALIDATORS, verifier)
  const [a, b] = signers as [(typeof signers)[0], (typeof signers)[0]]
  for (const body of [
    { type: 'unstake', role: 'validator', amount: 5_000n },
    { type: 'stake', role: 'host', amount: 500n },
    { type: 'register-model', name: 'tiny', cid: CIDS[0] as string, parent: null, parameters: 7n }
  ] as TxBody[]) {
    const r = applyTx(s, tx(s, a, body), { height: 1, verifier })
    assert.ok(r.ok, r.ok ? '' : r.error.message)
    s = r.state
  }
  const r = applyTx(s, tx(s, b, { type: 'transfer', to: a.address, amount: 3n }), { height: 1, verifier })
  assert.ok(r.ok)
  s = r.state
  const bytes = encodeState(s)
  const back = decodeState(bytes)
  assert.equal(stateRoot(back), stateRoot(s))
  assert.deepEqual(encodeState(back), bytes)
  assert.throws(() => decodeState(bytes.subarray(0, bytes.length - 3)))
  assert.throws(() => decodeState(encodeTx(tx(s, a, { type: 'transfer', to: b.address, amount: 1n }))), /not a state snapshot/)
})

test('a cached verification never vouches for other bytes or another signer', () => {
  const cached = new SignatureVerifier(10)
  const [a, b] = signers as [(typeof signers)[0], (typeof signers)[0]]
  const msg = new TextEncoder().encode('pay 1')
  const sig = a.sign(msg)
  assert.equal(cached.verify(a.address, msg, sig), true)
  assert.equal(cached.verify(a.address, msg, sig), true)
  assert.equal(cached.verify(a.address, new TextEncoder().encode('pay 9'), sig), false)
  assert.equal(cached.verify(b.address, msg, sig), false)
  for (let i = 0; i < 30; i++) assert.equal(cached.verify(a.address, msg, a.sign(new TextEncoder().encode(`m${i}`))), false)
})
