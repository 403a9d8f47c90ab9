import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  applyTx,
  buildBlock,
  type ChainState,
  encodeTx,
  genesisState,
  MULTIPLIER_ONE,
  redeemedKey,
  type SignedTx,
  signVote,
  signVoucher,
  stateRoot,
  type TxBody,
  totalSupply
} from '../../src/chain/index.ts'
import { SignatureVerifier, type Signer } from '../../src/crypto/index.ts'
import { TREASURY_ADDRESS } from '../../src/params/index.ts'
import { CHAIN_ID, makeGenesis, makeSigners, makeState, tx } from './fixtures.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 150)
console.log(`economy properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const verifier = new SignatureVerifier(10_000)
const signers = makeSigners(6)
// signers 0-1 validate (stakes 10,000 each), 2 is a host, 3-5 are payers
const [v0, v1, host, payer, payer2] = signers as [Signer, Signer, Signer, Signer, Signer, Signer]
const MODEL = 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4'
const balance = (s: ChainState, a: string) => s.accounts.get(a)?.balance ?? 0n

function apply(state: ChainState, t: SignedTx, height = state.height + 1): ChainState {
  const r = applyTx(state, t, { height, verifier })
  if (!r.ok) throw r.error
  return r.state
}

function refused(state: ChainState, t: SignedTx, code: string): void {
  const before = stateRoot(state)
  const r = applyTx(state, t, { height: state.height + 1, verifier })
  assert.equal(r.ok, false, `expected ${code}`)
  if (!r.ok) assert.equal(r.error.code, code, r.error.message)
  assert.equal(stateRoot(state), before)
}

const voucher = (from: Signer, amount: bigint, seq: number, to = host.address, chainId = CHAIN_ID) =>
  signVoucher(from, { chainId, host: to, amount, seq })

function funded(): ChainState {
  const genesis = makeGenesis(signers, 2)
  let s = genesisState({ ...genesis, params: { ...genesis.params, targetTokensPerBlock: '100' } }, verifier)
  s = apply(s, tx(s, payer, { type: 'escrow-open', amount: 100_000n }, 0n))
  s = apply(s, tx(s, v0, { type: 'register-model', name: 'tiny', cid: MODEL, parent: null, parameters: 500_000n }, 0n))
  return s
}

test('escrows: open, top up, close; released to the payer after the delay; refusals change nothing', () => {
  let s = makeState(signers, 2, verifier)
  const supply = totalSupply(s)
  refused(s, tx(s, payer, { type: 'escrow-topup', amount: 1n }), 'NO_ESCROW')
  refused(s, tx(s, payer, { type: 'escrow-open', amount: 10_000_000n }), 'INSUFFICIENT_BALANCE')
  refused(s, tx(s, payer, { type: 'escrow-open', amount: 0n }), 'ZERO_AMOUNT')
  s = apply(s, tx(s, payer, { type: 'escrow-open', amount: 1_000n }))
  refused(s, tx(s, payer, { type: 'escrow-open', amount: 1n }), 'ESCROW_EXISTS')
  s = apply(s, tx(s, payer, { type: 'escrow-topup', amount: 500n }))
  assert.deepEqual(s.escrows.get(payer.address), { balance: 1_500n, releaseHeight: null })
  assert.equal(totalSupply(s), supply, 'an escrow holds supply, it does not create it')
  s = apply(s, tx(s, payer, { type: 'escrow-close' }), 10)
  assert.equal(s.escrows.get(payer.address)?.releaseHeight, 10 + s.params.escrowCloseDelayBlocks)
  refused(s, tx(s, payer, { type: 'escrow-topup', amount: 1n }), 'ESCROW_CLOSING')
  refused(s, tx(s, payer, { type: 'escrow-close' }), 'ESCROW_CLOSING')
  // blocks pass: at the release height what is left returns to the payer
  const before = balance(s, payer.address)
  const release = s.escrows.get(payer.address)?.releaseHeight ?? 0
  while (s.height < release)
    s = buildBlock(s, { proposer: v0.address, time: s.lastBlockTime + 1000, lastCommit: null, candidates: [], verifier }).state
  assert.equal(s.escrows.has(payer.address), false)
  assert.equal(balance(s, payer.address), before + 1_500n)
  assert.equal(totalSupply(s), supply)
})

test('redeem: a host is paid the increase of each voucher, split 70/20/10, never twice and never beyond the escrow', () => {
  let s = funded()
  const supply = totalSupply(s)
  const hostBefore = balance(s, host.address)
  const [v0Before, v1Before, treasuryBefore] = [balance(s, v0.address), balance(s, v1.address), balance(s, TREASURY_ADDRESS)]
  const redeem = (vouchers: Uint8Array[], served: Array<{ model: string; tokens: bigint }> = []): TxBody => ({
    type: 'redeem',
    vouchers,
    served
  })

  s = apply(s, tx(s, host, redeem([voucher(payer, 1_000n, 1)], [{ model: MODEL, tokens: 100n }]), 0n))
  assert.equal(balance(s, host.address), hostBefore + 700n)
  assert.equal(balance(s, v0.address), v0Before + 100n)
  assert.equal(balance(s, v1.address), v1Before + 100n)
  assert.equal(balance(s, TREASURY_ADDRESS), treasuryBefore + 100n)
  assert.equal(s.escrows.get(payer.address)?.balance, 99_000n)
  assert.equal(s.redeemed.get(redeemedKey(payer.address, host.address)), 1_000n)
  assert.deepEqual(s.totals, { feesRedeemed: 1_000n, paidToHosts: 700n, paidToValidators: 200n, paidToTreasury: 100n })
  assert.equal(s.markets.get(MODEL)?.served, 100n)
  assert.equal(totalSupply(s), supply)

  // the same voucher again, or an older one: nothing to pay
  refused(s, tx(s, host, redeem([voucher(payer, 1_000n, 1)])), 'NOTHING_TO_REDEEM')
  refused(s, tx(s, host, redeem([voucher(payer, 900n, 2)])), 'NOTHING_TO_REDEEM')
  // a later voucher pays only the increase
  s = apply(s, tx(s, host, redeem([voucher(payer, 1_500n, 2)]), 0n))
  assert.equal(s.redeemed.get(redeemedKey(payer.address, host.address)), 1_500n)
  // a voucher beyond the escrow pays what the escrow holds
  s = apply(s, tx(s, host, redeem([voucher(payer, 10_000_000n, 3)]), 0n))
  assert.equal(s.escrows.get(payer.address)?.balance, 0n)
  assert.equal(s.redeemed.get(redeemedKey(payer.address, host.address)), 100_000n)
  refused(s, tx(s, host, redeem([voucher(payer, 10_000_001n, 4)])), 'NOTHING_TO_REDEEM')
  assert.equal(totalSupply(s), supply)

  // bad vouchers: another host's, another chain's, a forged one, two from one payer, no escrow
  const t = funded()
  refused(t, tx(t, host, redeem([voucher(payer, 10n, 1, v1.address)])), 'BAD_VOUCHER')
  refused(t, tx(t, host, redeem([voucher(payer, 10n, 1, host.address, 'other-chain')])), 'BAD_VOUCHER')
  const forged = voucher(payer, 10n, 1)
  forged[forged.length - 1] = (forged[forged.length - 1] ?? 0) ^ 1
  refused(t, tx(t, host, redeem([forged])), 'BAD_VOUCHER')
  refused(t, tx(t, host, redeem([voucher(payer, 10n, 1), voucher(payer, 20n, 2)])), 'BAD_VOUCHER')
  refused(t, tx(t, host, redeem([voucher(payer2, 10n, 1)])), 'NO_ESCROW')
  // served load worth more than the payment
  refused(t, tx(t, host, redeem([voucher(payer, 10n, 1)], [{ model: MODEL, tokens: 1_000n }])), 'LOAD_OVER_PAYMENT')
  refused(
    t,
    tx(t, host, redeem([voucher(payer, 10n, 1)], [{ model: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', tokens: 1n }])),
    'UNKNOWN_MODEL'
  )
})

test('the demand multiplier follows redeemed load block by block', () => {
  let s = funded()
  const target = s.params.targetTokensPerBlock
  const next = (txs: Uint8Array[] = []) => {
    s = buildBlock(s, { proposer: v0.address, time: s.lastBlockTime + 1000, lastCommit: null, candidates: txs, verifier }).state
  }
  next()
  assert.equal(s.markets.get(MODEL)?.multiplier, MULTIPLIER_ONE - MULTIPLIER_ONE / 8n, 'no load: -12.5%')
  const before = s.markets.get(MODEL)?.multiplier ?? 0n
  // twice the target served in one block: +12.5%
  const tokens = 2n * target
  next([encodeTx(tx(s, host, { type: 'redeem', vouchers: [voucher(payer, tokens * 100n, 1)], served: [{ model: MODEL, tokens }] }, 0n))])
  assert.equal(s.markets.get(MODEL)?.multiplier, before + before / 8n)
  assert.equal(s.markets.get(MODEL)?.served, 0n, 'served load resets each block')
  // exactly on target: unchanged
  const onTarget = s.markets.get(MODEL)?.multiplier ?? 0n
  next([
    encodeTx(tx(s, host, { type: 'redeem', vouchers: [voucher(payer, tokens * 200n, 2)], served: [{ model: MODEL, tokens: target }] }, 0n))
  ])
  assert.equal(s.markets.get(MODEL)?.multiplier, onTarget)
})

type Op =
  | { kind: 'open' | 'topup'; payer: number; amount: bigint }
  | { kind: 'close'; payer: number }
  | { kind: 'redeem'; payer: number; host: number; amount: bigint; tokens: bigint }
  | { kind: 'transfer'; from: number; amount: bigint }
  | { kind: 'stake' | 'unstake'; who: number; role: 'validator' | 'host'; amount: bigint }
  | { kind: 'slash'; who: number; equivocate: boolean }
  | { kind: 'propose'; who: number; fee: bigint }
  | { kind: 'vote'; who: number; yes: boolean }
  | { kind: 'block' }

const who = fc.integer({ min: 0, max: 5 })
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('open' as const, 'topup' as const), payer: who, amount: fc.bigInt({ min: 0n, max: 300_000n }) }),
  fc.record({ kind: fc.constant('close' as const), payer: who }),
  fc.record({
    kind: fc.constant('redeem' as const),
    payer: who,
    host: who,
    amount: fc.bigInt({ min: 0n, max: 200_000n }),
    tokens: fc.bigInt({ min: 0n, max: 500n })
  }),
  fc.record({ kind: fc.constant('transfer' as const), from: who, amount: fc.bigInt({ min: 1n, max: 1_000n }) }),
  fc.record({
    kind: fc.constantFrom('stake' as const, 'unstake' as const),
    who,
    role: fc.constantFrom('validator' as const, 'host' as const),
    amount: fc.bigInt({ min: 0n, max: 20_000n })
  }),
  fc.record({ kind: fc.constant('slash' as const), who: fc.integer({ min: 0, max: 1 }), equivocate: fc.boolean() }),
  fc.record({ kind: fc.constant('propose' as const), who, fee: fc.bigInt({ min: 0n, max: 100n }) }),
  fc.record({ kind: fc.constant('vote' as const), who, yes: fc.boolean() }),
  fc.constant({ kind: 'block' as const })
)

/**
 * One sequence in which every kind of transaction is accepted, run before the random ones: the
 * coverage check below then holds for every seed (with FC_SEED=397701502 no random sequence of
 * 150 had a vote accepted).
 */
const EVERY_KIND: Op[] = [
  { kind: 'open', payer: 4, amount: 1_000n },
  { kind: 'topup', payer: 3, amount: 10n },
  { kind: 'redeem', payer: 3, host: 2, amount: 1_000n, tokens: 10n },
  { kind: 'transfer', from: 3, amount: 10n },
  { kind: 'stake', who: 2, role: 'host', amount: 100n },
  { kind: 'slash', who: 1, equivocate: true },
  { kind: 'propose', who: 0, fee: 5n },
  { kind: 'vote', who: 0, yes: true },
  // all of its 10,000 (a rest below the minimum is refused)
  { kind: 'unstake', who: 0, role: 'validator', amount: 10_000n },
  { kind: 'close', payer: 4 }
]

test('property: transfers, stakes, slashes, escrows, vouchers, redemptions and proposals conserve supply, never go negative, never pay a voucher twice, and split exactly', () => {
  const accepted = new Map<string, number>()
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
      let s = funded()
      const supply = totalSupply(s)
      // the highest voucher each payer signed to each host: the chain may never pay more
      const signed = new Map<string, bigint>()
      const seqs = new Map<string, number>()
      for (const op of ops) {
        if (op.kind === 'block') {
          s = buildBlock(s, { proposer: v0.address, time: s.lastBlockTime + 1000, lastCommit: null, candidates: [], verifier }).state
          continue
        }
        let t: SignedTx
        if (op.kind === 'open' || op.kind === 'topup') {
          const p = signers[op.payer] as Signer
          t = tx(s, p, { type: op.kind === 'open' ? 'escrow-open' : 'escrow-topup', amount: op.amount })
        } else if (op.kind === 'close') {
          t = tx(s, signers[op.payer] as Signer, { type: 'escrow-close' })
        } else if (op.kind === 'transfer') {
          t = tx(s, signers[op.from] as Signer, { type: 'transfer', to: host.address, amount: op.amount })
        } else if (op.kind === 'stake' || op.kind === 'unstake') {
          t = tx(s, signers[op.who] as Signer, { type: op.kind, role: op.role, amount: op.amount })
        } else if (op.kind === 'slash') {
          // a validator's two precommits at one height: evidence (a slash) when they differ
          const offender = signers[op.who] as Signer
          const v = { chainId: CHAIN_ID, height: Math.max(1, s.height), round: 0, type: 'precommit' as const, validator: offender.address }
          const a = signVote({ ...v, blockHash: 'a'.repeat(64) }, offender)
          const b = signVote({ ...v, blockHash: op.equivocate ? 'b'.repeat(64) : 'a'.repeat(64) }, offender)
          t = tx(s, host, { type: 'evidence', a, b })
        } else if (op.kind === 'propose') {
          const at = s.height + 1 + s.params.govVotingBlocks
          t = tx(s, signers[op.who] as Signer, { type: 'gov-propose', changes: [['baseFee', (op.fee + 1n).toString()]], applyHeight: at })
        } else if (op.kind === 'vote') {
          t = tx(s, signers[op.who] as Signer, {
            type: 'gov-vote',
            proposal: Math.max(0, s.nextProposalId - 1),
            choice: op.yes ? 'yes' : 'no'
          })
        } else {
          const op2 = op as Extract<Op, { kind: 'redeem' }>
          const p = signers[op2.payer] as Signer
          const h = signers[op2.host] as Signer
          const key = redeemedKey(p.address, h.address)
          const seq = (seqs.get(key) ?? 0) + 1
          seqs.set(key, seq)
          if (op2.amount > (signed.get(key) ?? 0n)) signed.set(key, op2.amount)
          t = tx(s, h, {
            type: 'redeem',
            vouchers: [voucher(p, op2.amount, seq, h.address)],
            served: op2.tokens > 0n ? [{ model: MODEL, tokens: op2.tokens }] : []
          })
        }
        const r = applyTx(s, t, { height: s.height + 1, verifier })
        if (!r.ok) continue
        accepted.set(t.body.type, (accepted.get(t.body.type) ?? 0) + 1)
        s = r.state
        assert.equal(totalSupply(s), supply, `supply changed by ${t.body.type}`)
        for (const [a, acc] of s.accounts) assert.ok(acc.balance >= 0n, `balance of ${a}`)
        for (const [a, e] of s.escrows) assert.ok(e.balance >= 0n, `escrow of ${a}`)
        for (const [key, paid] of s.redeemed) assert.ok(paid <= (signed.get(key) ?? 0n), `${key} paid ${paid} beyond its vouchers`)
        const t2 = s.totals
        assert.equal(t2.paidToHosts + t2.paidToValidators + t2.paidToTreasury, t2.feesRedeemed, 'the split adds up')
        assert.equal(
          [...s.redeemed.values()].reduce((x, y) => x + y, 0n),
          t2.feesRedeemed
        )
      }
    }),
    { seed, numRuns: runs, examples: [[EVERY_KIND]] }
  )
  for (const kind of [
    'escrow-open',
    'escrow-topup',
    'escrow-close',
    'redeem',
    'transfer',
    'stake',
    'unstake',
    'evidence',
    'gov-propose',
    'gov-vote'
  ])
    assert.ok((accepted.get(kind) ?? 0) > 0, `the generator never got a ${kind} accepted`)
})
