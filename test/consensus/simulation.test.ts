import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runSimulation, type SimOptions, type SimResult } from '../../src/consensus/index.ts'
import { Rng } from '../../src/consensus/sim/rng.ts'

// SIM_SEEDS seeds per scenario (more on demand: SIM_SEEDS=200 npm test -- test/consensus/...);
// SIM_SEED fixes the first seed to replay a failure.
const count = Number(process.env.SIM_SEEDS ?? 4)
const first = Number(process.env.SIM_SEED ?? Date.now() % 1_000_000)
const seeds = Array.from({ length: count }, (_, i) => first + i)
console.log(`consensus simulation: SIM_SEED=${first} SIM_SEEDS=${count}`)

function run(name: string, opts: Omit<SimOptions, 'seed'>, check?: (r: SimResult) => void): void {
  test(`simulation: ${name}`, () => {
    for (const seed of seeds) {
      let r: SimResult
      try {
        r = runSimulation({ ...opts, seed })
        check?.(r)
      } catch (err) {
        throw new Error(`${name} failed with SIM_SEED=${seed}: ${(err as Error).message}`, { cause: err })
      }
    }
  })
}

const lossy = { minDelayMs: 5, maxDelayMs: 120, loss: 0.05 }

run(
  '4 honest validators on a lossy, reordering network commit at the block interval',
  { validators: 4, durationMs: 20_000, network: lossy, livenessBoundMs: 6_000, blockTimeMs: 1_000 },
  (r) => {
    assert.ok(Math.min(...r.heights) >= 12, `heights ${r.heights}`)
    const sorted = [...r.blockIntervalsMs].sort((a, b) => a - b)
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0
    assert.ok(median >= 900 && median <= 1_600, `median block interval ${median} ms`)
  }
)

run(
  'one equivocating validator of 4: no fork, progress, and it is slashed',
  { validators: 4, durationMs: 20_000, network: lossy, byzantine: [{ index: 3, behavior: 'equivocate' }], livenessBoundMs: 8_000 },
  (r) => {
    assert.equal(r.equivocated.length, 1)
    assert.deepEqual(r.slashed, r.equivocated)
  }
)

run('7 validators, one equivocating and one silent, 10% loss', {
  validators: 7,
  durationMs: 25_000,
  network: { minDelayMs: 5, maxDelayMs: 200, loss: 0.1 },
  byzantine: [
    { index: 1, behavior: 'equivocate' },
    { index: 5, behavior: 'silent' }
  ],
  livenessBoundMs: 10_000
})

run(
  'a 2|2 partition stops commits without a fork; healing resumes them',
  {
    validators: 4,
    durationMs: 25_000,
    network: lossy,
    partitions: [
      {
        fromMs: 4_000,
        toMs: 12_000,
        groups: [
          [0, 1],
          [2, 3]
        ]
      }
    ],
    livenessBoundMs: 8_000
  },
  (r) => {
    for (const times of r.commitTimes) {
      // a commit may land just after the cut from votes already in flight; none after that
      const during = times.filter((t) => t > 4_500 && t < 12_000)
      assert.deepEqual(during, [], 'no block commits while no side has two thirds')
    }
    assert.ok(Math.min(...r.heights) > 4)
  }
)

run('an isolated honest validator with an equivocator among the rest: no fork', {
  validators: 4,
  durationMs: 25_000,
  network: lossy,
  byzantine: [{ index: 3, behavior: 'equivocate' }],
  partitions: [{ fromMs: 2_000, toMs: 10_000, groups: [[0], [1, 2, 3]] }],
  livenessBoundMs: 10_000
})

test('simulation: honest validators crash and restart from disk at random times', () => {
  for (const seed of seeds) {
    const rng = new Rng(seed ^ 0x5eed)
    const crashes = Array.from({ length: 3 }, () => {
      const atMs = rng.between(1_000, 12_000)
      return { node: rng.int(4), atMs, restartAtMs: atMs + rng.between(10, 4_000) }
    })
    // one node down at a time keeps two thirds up; overlapping crashes of two nodes stall the chain
    crashes.sort((a, b) => a.atMs - b.atMs)
    for (let i = 1; i < crashes.length; i++) {
      const prev = crashes[i - 1] as (typeof crashes)[number]
      const c = crashes[i] as (typeof crashes)[number]
      if (c.atMs < prev.restartAtMs) {
        c.atMs = prev.restartAtMs + 1
        c.restartAtMs = Math.max(c.restartAtMs, c.atMs + 10)
      }
    }
    try {
      runSimulation({ seed, validators: 4, durationMs: 30_000, network: lossy, crashes, livenessBoundMs: 8_000 })
    } catch (err) {
      throw new Error(`crash-restart failed with SIM_SEED=${seed}: ${(err as Error).message}`, { cause: err })
    }
  }
})

test('the same seed replays the same run', () => {
  const opts = { seed: first, validators: 4, durationMs: 8_000, network: lossy, byzantine: [{ index: 2, behavior: 'equivocate' as const }] }
  const a = runSimulation(opts)
  const b = runSimulation(opts)
  assert.deepEqual(a.hashes, b.hashes)
  assert.deepEqual(a.commitTimes, b.commitTimes)
  assert.equal(a.messagesSent, b.messagesSent)
})
