// Runs every *.test.ts under test/ (or under the files and directories given) with Node's test runner, tsx and the
// Promise.withResolvers polyfill loaded first. Node 20's --test does not expand globs itself.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return find(p)
    return e.name.endsWith('.test.ts') ? [p] : []
  })
}

// test/devnet holds the multi-process devnet tests (minutes each): `npm run test:devnet` runs them,
// `npm test` runs everything else; CI runs both
const args = process.argv.slice(2)
const files =
  args.length > 0
    ? args.flatMap((a) => (statSync(a).isDirectory() ? find(a).sort() : [a]))
    : find('test')
        .filter((f) => !f.startsWith(join('test', 'devnet')))
        .sort()
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--import', './src/polyfill.ts', '--test', '--test-reporter=spec', ...files],
  { stdio: 'inherit' }
)
process.exit(result.status ?? 1)
