// The consensus simulation's scenarios, shared by the test (a few seeds per run) and the soak
// (`npm run soak`, many seeds). Each builds its options from a seed and checks the result; the
// simulation itself checks agreement at every commit, liveness after the last fault, and slashing.
import assert from 'node:assert/strict'
import type { SimOptions, SimResult } from '../../src/consensus/index.ts'
import { Rng } from '../../src/consensus/sim/rng.ts'

export interface Scenario {
  name: string
  options(seed: number): SimOptions
  check?(r: SimResult): void
}

const lossy = { minDelayMs: 5, maxDelayMs: 120, loss: 0.05 }

/** Random crash-restarts of honest nodes, one node down at a time (two down stalls the chain). */
function crashesFor(seed: number): NonNullable<SimOptions['crashes']> {
  const rng = new Rng(seed ^ 0x5eed)
  const crashes = Array.from({ length: 3 }, () => {
    const atMs = rng.between(1_000, 12_000)
    return { node: rng.int(4), atMs, restartAtMs: atMs + rng.between(10, 4_000) }
  })
  crashes.sort((a, b) => a.atMs - b.atMs)
  for (let i = 1; i < crashes.length; i++) {
    const prev = crashes[i - 1] as (typeof crashes)[number]
    const c = crashes[i] as (typeof crashes)[number]
    if (c.atMs < prev.restartAtMs) {
      c.atMs = prev.restartAtMs + 1
      c.restartAtMs = Math.max(c.restartAtMs, c.atMs + 10)
    }
  }
  return crashes
}

export const SCENARIOS: Scenario[] = [
  {
    name: '4 honest validators on a lossy, reordering network commit at the block interval',
    options: (seed) => ({ seed, validators: 4, durationMs: 20_000, network: lossy, livenessBoundMs: 6_000, blockTimeMs: 1_000 }),
    check: (r) => {
      assert.ok(Math.min(...r.heights) >= 12, `heights ${r.heights}`)
      const sorted = [...r.blockIntervalsMs].sort((a, b) => a - b)
      const median = sorted[Math.floor(sorted.length / 2)] ?? 0
      assert.ok(median >= 900 && median <= 1_600, `median block interval ${median} ms`)
    }
  },
  {
    name: 'one equivocating validator of 4: no fork, progress, and it is slashed',
    options: (seed) => ({
      seed,
      validators: 4,
      durationMs: 20_000,
      network: lossy,
      byzantine: [{ index: 3, behavior: 'equivocate' }],
      livenessBoundMs: 8_000
    }),
    check: (r) => {
      assert.equal(r.equivocated.length, 1)
      assert.deepEqual(r.slashed, r.equivocated)
    }
  },
  {
    name: '7 validators, one equivocating and one silent, 10% loss',
    options: (seed) => ({
      seed,
      validators: 7,
      durationMs: 25_000,
      network: { minDelayMs: 5, maxDelayMs: 200, loss: 0.1 },
      byzantine: [
        { index: 1, behavior: 'equivocate' },
        { index: 5, behavior: 'silent' }
      ],
      livenessBoundMs: 10_000
    })
  },
  {
    name: 'a 2|2 partition stops commits without a fork; healing resumes them',
    options: (seed) => ({
      seed,
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
    }),
    check: (r) => {
      for (const times of r.commitTimes) {
        // a commit may land just after the cut from votes already in flight; none after that
        const during = times.filter((t) => t > 4_500 && t < 12_000)
        assert.deepEqual(during, [], 'no block commits while no side has two thirds')
      }
      assert.ok(Math.min(...r.heights) > 4)
    }
  },
  {
    name: 'an isolated honest validator with an equivocator among the rest: no fork',
    options: (seed) => ({
      seed,
      validators: 4,
      durationMs: 25_000,
      network: lossy,
      byzantine: [{ index: 3, behavior: 'equivocate' }],
      partitions: [{ fromMs: 2_000, toMs: 10_000, groups: [[0], [1, 2, 3]] }],
      livenessBoundMs: 10_000
    })
  },
  {
    name: 'honest validators crash and restart from disk at random times',
    options: (seed) => ({ seed, validators: 4, durationMs: 30_000, network: lossy, crashes: crashesFor(seed), livenessBoundMs: 8_000 })
  }
]
