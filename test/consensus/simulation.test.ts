import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runSimulation } from '../../src/consensus/index.ts'
import { SCENARIOS } from './scenarios.ts'

// SIM_SEEDS seeds per scenario (many more: `npm run soak`, see scripts/soak.mjs); SIM_SEED fixes
// the first seed to replay a failure.
const count = Number(process.env.SIM_SEEDS ?? 4)
const first = Number(process.env.SIM_SEED ?? Date.now() % 1_000_000)
const seeds = Array.from({ length: count }, (_, i) => first + i)
console.log(`consensus simulation: SIM_SEED=${first} SIM_SEEDS=${count}`)

for (const scenario of SCENARIOS) {
  test(`simulation: ${scenario.name}`, () => {
    for (const seed of seeds) {
      try {
        const result = runSimulation(scenario.options(seed))
        scenario.check?.(result)
      } catch (err) {
        throw new Error(`${scenario.name} failed with SIM_SEED=${seed}: ${(err as Error).message}`, { cause: err })
      }
    }
  })
}

test('the same seed replays the same run', () => {
  const network = { minDelayMs: 5, maxDelayMs: 120, loss: 0.05 }
  const opts = { seed: first, validators: 4, durationMs: 8_000, network, byzantine: [{ index: 2, behavior: 'equivocate' as const }] }
  const a = runSimulation(opts)
  const b = runSimulation(opts)
  assert.deepEqual(a.hashes, b.hashes)
  assert.deepEqual(a.commitTimes, b.commitTimes)
  assert.equal(a.messagesSent, b.messagesSent)
})
