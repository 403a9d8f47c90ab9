// npm run soak — the consensus simulation's scenarios (test/consensus/scenarios.ts) over many
// seeds, one after another in this process. Every failure is printed with the command that
// replays it; the run goes on to the next seed and stops after SOAK_MAX_FAILURES failures.
//
//   SIM_SEEDS=500 npm run soak                  500 seeds per scenario (default 100)
//   SIM_SEED=123456 SIM_SEEDS=1 npm run soak    replay one seed
//   SOAK_SCENARIO=partition npm run soak        only scenarios whose name contains the text
//   SOAK_MAX_MINUTES=30 npm run soak            stop starting new seeds after 30 minutes (default 60)
//
// Exits 0 if every run passed, 1 otherwise.
import { register } from 'tsx/esm/api'

register()
await import('../src/polyfill.ts')
const { runSimulation } = await import('../src/consensus/index.ts')
const { SCENARIOS } = await import('../test/consensus/scenarios.ts')

function intEnv(name, fallback, min, max) {
  const raw = process.env[name]
  if (raw == null || raw === '') return fallback
  const v = Number(raw)
  if (!Number.isInteger(v) || v < min || v > max) {
    console.error(`${name}=${raw}: expected an integer from ${min} to ${max}`)
    process.exit(2)
  }
  return v
}

const count = intEnv('SIM_SEEDS', 100, 1, 1_000_000)
const first = intEnv('SIM_SEED', Date.now() % 1_000_000, 0, Number.MAX_SAFE_INTEGER - 1_000_000)
const maxMinutes = intEnv('SOAK_MAX_MINUTES', 60, 1, 7 * 24 * 60)
const maxFailures = intEnv('SOAK_MAX_FAILURES', 10, 1, 10_000)
const filter = process.env.SOAK_SCENARIO ?? ''
const scenarios = SCENARIOS.filter((s) => s.name.includes(filter))
if (scenarios.length === 0) {
  console.error(`SOAK_SCENARIO=${filter} matches no scenario; the scenarios are:\n${SCENARIOS.map((s) => `  ${s.name}`).join('\n')}`)
  process.exit(2)
}

console.log(`soak: ${scenarios.length} scenario(s) x ${count} seed(s) from SIM_SEED=${first}, at most ${maxMinutes} min`)
const started = Date.now()
const deadline = started + maxMinutes * 60_000
const failures = []
let runs = 0
let seedsDone = 0
for (let i = 0; i < count && failures.length < maxFailures; i++) {
  if (Date.now() > deadline) {
    console.log(`soak: time is up after ${seedsDone} seed(s)`)
    break
  }
  const seed = first + i
  for (const scenario of scenarios) {
    runs++
    try {
      // not `check?.(runSimulation(...))`: an absent check would skip evaluating the run itself
      const result = runSimulation(scenario.options(seed))
      scenario.check?.(result)
    } catch (err) {
      failures.push({ seed, scenario: scenario.name, message: err.message })
      console.log(`FAIL SIM_SEED=${seed} ${scenario.name}: ${err.message}`)
      console.log(`  replay: SIM_SEED=${seed} SIM_SEEDS=1 SOAK_SCENARIO=${JSON.stringify(scenario.name)} npm run soak`)
      if (failures.length >= maxFailures) break
    }
  }
  seedsDone++
  if (seedsDone % 10 === 0 || seedsDone === count) {
    const s = ((Date.now() - started) / 1000).toFixed(0)
    console.log(`soak: ${seedsDone}/${count} seeds, ${runs} runs, ${failures.length} failure(s), ${s} s`)
  }
}
const elapsed = ((Date.now() - started) / 1000).toFixed(0)
console.log(
  `soak: ${runs} runs over ${seedsDone} seed(s) in ${elapsed} s: ${failures.length === 0 ? 'all passed' : `${failures.length} failed`}`
)
process.exit(failures.length === 0 ? 0 : 1)
