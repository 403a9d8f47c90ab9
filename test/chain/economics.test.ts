import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { complexityOf, DEFAULT_SPLIT, MULTIPLIER_ONE, nextMultiplier, requestPrice, splitPayment } from '../../src/chain/economics.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 500)
console.log(`economics properties: FC_SEED=${seed} FC_RUNS=${runs}`)

test('price: baseFee x multiplier x complexity x tokens, rounded up', () => {
  assert.equal(complexityOf(0n), 1n)
  assert.equal(complexityOf(500_000n), 1n)
  assert.equal(complexityOf(7_000_000_000n), 7n)
  assert.equal(complexityOf(7_000_000_001n), 8n)
  const base = { baseFee: 10n, multiplier: MULTIPLIER_ONE, complexity: 7n, promptTokens: 30, completionTokens: 16 }
  assert.equal(requestPrice(base), 10n * 7n * 46n)
  assert.equal(requestPrice({ ...base, multiplier: (MULTIPLIER_ONE * 3n) / 2n }), (10n * 7n * 46n * 3n) / 2n)
  // a fraction of a unit rounds up: never free
  assert.equal(requestPrice({ ...base, baseFee: 1n, multiplier: 1n, complexity: 1n, promptTokens: 1, completionTokens: 0 }), 1n)
  assert.equal(requestPrice({ ...base, promptTokens: 0, completionTokens: 0 }), 0n)
})

test('demand multiplier: +-12.5% per block at most, toward load, within bounds', () => {
  const bounds = { min: MULTIPLIER_ONE / 10n, max: MULTIPLIER_ONE * 10n }
  let m = MULTIPLIER_ONE
  const path: bigint[] = []
  // load twice the target for 30 blocks: +12.5% a block until the upper bound
  for (let i = 0; i < 30; i++) {
    m = nextMultiplier(m, 2_000n, 1_000n, bounds)
    path.push(m)
  }
  assert.equal(path[0], 1_125_000n)
  assert.equal(path[1], 1_265_625n)
  assert.equal(path.at(-1), bounds.max)
  // half the target: -6.25% a block; no load: -12.5% a block, down to the lower bound
  assert.equal(nextMultiplier(MULTIPLIER_ONE, 500n, 1_000n, bounds), 937_500n)
  for (let i = 0; i < 60; i++) m = nextMultiplier(m, 0n, 1_000n, bounds)
  assert.equal(m, bounds.min)
  // on target: unchanged
  assert.equal(nextMultiplier(2n * MULTIPLIER_ONE, 1_000n, 1_000n, bounds), 2n * MULTIPLIER_ONE)

  fc.assert(
    fc.property(
      fc.bigInt({ min: 1n, max: 10n ** 12n }),
      fc.bigInt({ min: 0n, max: 10n ** 9n }),
      fc.bigInt({ min: 1n, max: 10n ** 9n }),
      (current, served, target) => {
        const b = { min: 1n, max: 10n ** 13n }
        const next = nextMultiplier(current, served, target, b)
        assert.ok(next >= b.min && next <= b.max)
        const maxStep = (current * 1_250n) / 10_000n + 1n
        assert.ok(next - current <= maxStep && current - next <= maxStep, 'at most 12.5% (+1 unit) per block')
        if (served > target) assert.ok(next >= current)
        if (served < target) assert.ok(next <= current)
      }
    ),
    { seed, numRuns: runs }
  )
})

test('split: 70/20/10 with validators pro rata to stake; the parts always add up to the amount', () => {
  const s = splitPayment(1_000n, DEFAULT_SPLIT, [
    { address: 'v1', stake: 3n },
    { address: 'v2', stake: 1n }
  ])
  assert.equal(s.host, 700n)
  assert.deepEqual(
    [...s.validators],
    [
      ['v1', 150n],
      ['v2', 50n]
    ]
  )
  assert.equal(s.treasury, 100n)
  // rounding remainders go to the treasury
  const odd = splitPayment(7n, DEFAULT_SPLIT, [
    { address: 'v1', stake: 1n },
    { address: 'v2', stake: 1n },
    { address: 'v3', stake: 1n }
  ])
  assert.equal(odd.host, 4n)
  assert.equal(odd.treasury, 3n)
  assert.throws(() => splitPayment(1n, { hostBps: 7_000n, validatorsBps: 2_000n, treasuryBps: 999n }, []), RangeError)

  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.array(fc.record({ address: fc.string({ minLength: 1, maxLength: 4 }), stake: fc.bigInt({ min: 0n, max: 10n ** 18n }) }), {
        maxLength: 20
      }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.bigInt({ min: 0n, max: 9_999n }),
      (amount, validators, a, b, carry) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a]
        const shares = { hostBps: BigInt(lo), validatorsBps: BigInt(hi - lo), treasuryBps: BigInt(10_000 - hi) }
        const s = splitPayment(amount, shares, validators, carry)
        const toValidators = [...s.validators.values()].reduce((x, y) => x + y, 0n)
        assert.equal(s.host + toValidators + s.treasury, amount, 'no unit created or lost')
        assert.ok(s.host >= 0n && s.treasury >= 0n && [...s.validators.values()].every((v) => v > 0n))
        assert.equal(s.host * 10_000n + s.hostCarry, amount * shares.hostBps + carry)
        assert.ok(s.hostCarry >= 0n && s.hostCarry < 10_000n)
        assert.ok(toValidators <= (amount * shares.validatorsBps) / 10_000n)
      }
    ),
    { seed, numRuns: runs }
  )
})

test('split: with its carry, a host earns exactly floor(hostBps × everything it redeemed), however the redemptions are batched', () => {
  // 3 then 4 units at 70%: 2 (2.1, carry 0.1), then 2 (2.8 + 0.1, carry 0.9): 4 in all, floor(7 × 0.7)
  const first = splitPayment(3n, DEFAULT_SPLIT, [])
  assert.deepEqual([first.host, first.hostCarry], [2n, 1_000n])
  const second = splitPayment(4n, DEFAULT_SPLIT, [], first.hostCarry)
  assert.equal(first.host + second.host, 4n)
  assert.throws(() => splitPayment(1n, DEFAULT_SPLIT, [], 10_000n), RangeError)
  fc.assert(
    fc.property(
      fc.array(fc.bigInt({ min: 1n, max: 10n ** 12n }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 0, max: 10_000 }),
      (amounts, a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a]
        const shares = { hostBps: BigInt(lo), validatorsBps: BigInt(hi - lo), treasuryBps: BigInt(10_000 - hi) }
        let carry = 0n
        let host = 0n
        let total = 0n
        for (const amount of amounts) {
          const s = splitPayment(amount, shares, [{ address: 'v', stake: 1n }], carry)
          assert.ok(s.treasury >= 0n, `the treasury part of ${amount} is ${s.treasury}`)
          carry = s.hostCarry
          host += s.host
          total += amount
        }
        assert.equal(host, (total * shares.hostBps) / 10_000n)
      }
    ),
    { seed, numRuns: runs }
  )
})
