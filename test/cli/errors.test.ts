import assert from 'node:assert/strict'
import { access, chmod, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { ClassicLevel } from 'classic-level'
import { loadIdentityKey, signerFromPrivateKey } from '../../src/crypto/index.ts'
import { type CliResult, runCli, spawnCli } from '../cli-runner.ts'
import { freePortBase, tempDir, waitFor } from '../helpers.ts'

/** A user-facing failure: exit code 1 and exactly one line on stderr. */
function assertOneLineError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one error line, got:\n${r.stderr}`)
  assert.match(lines[0] ?? '', /^llmesh: error: /)
  assert.match(lines[0] ?? '', pattern)
}

async function initHomeCli(t: TestContext, ports?: { api: number; p2p: number }): Promise<string> {
  const home = join(await tempDir(t), 'home')
  const base = ports ?? { api: await freePortBase(1), p2p: 0 }
  const r = await runCli(t, ['init', '--home', home, '--api-port', String(base.api), '--p2p-port', String(base.p2p)])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /peer id\s+12D3KooW/)
  return home
}

async function occupy(t: TestContext, port: number): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return server
}

test('init refuses an existing home', async (t) => {
  const home = await initHomeCli(t)
  const key = await readFile(join(home, 'identity.key'))
  assertOneLineError(await runCli(t, ['init', '--home', home]), /already a node home/)
  assert.deepEqual(await readFile(join(home, 'identity.key')), key)
})

test('start without a home says to run init', async (t) => {
  const home = join(await tempDir(t), 'nothing-here')
  assertOneLineError(await runCli(t, ['start', '--home', home]), /config .*config\.json not found; run `llmesh init/)
})

test('start with a malformed config names the file and the setting', async (t) => {
  const home = await initHomeCli(t)
  const config = join(home, 'config.json')
  await writeFile(config, '{"roles": ["edge",]}')
  assertOneLineError(await runCli(t, ['start', '--home', home]), new RegExp(`config ${config} is not valid JSON`))
  await writeFile(config, '{"api": {"port": "eighty"}}')
  assertOneLineError(await runCli(t, ['start', '--home', home]), /api\.port/)
})

test('start with a key readable by others refuses and says how to fix it', async (t) => {
  const home = await initHomeCli(t)
  await chmod(join(home, 'identity.key'), 0o644)
  assertOneLineError(await runCli(t, ['start', '--home', home]), /identity key .* is readable by other users.*chmod 600/)
})

test('start on a taken API port names api.port and leaves no pid file', async (t) => {
  const api = await freePortBase(1)
  const home = await initHomeCli(t, { api, p2p: 0 })
  await occupy(t, api)
  assertOneLineError(await runCli(t, ['start', '--home', home]), new RegExp(`api\\.port ${api} .* is already in use`))
  await assert.rejects(access(join(home, 'node.pid')))
})

test('start on a taken p2p port names p2p.listen', async (t) => {
  const base = await freePortBase(1)
  const home = await initHomeCli(t, { api: base, p2p: base + 1000 })
  await occupy(t, base + 1000)
  // the config listens on 0.0.0.0; the blocker holds 127.0.0.1, which also makes 0.0.0.0 unavailable
  const r = await runCli(t, ['start', '--home', home])
  assertOneLineError(r, /p2p\.listen .* is already in use/)
})

test('start with only unreachable bootstrap peers gives up with one line naming p2p.bootstrap', async (t) => {
  const base = await freePortBase(1)
  const home = await initHomeCli(t, { api: base, p2p: 0 })
  const config = JSON.parse(await readFile(join(home, 'config.json'), 'utf8'))
  // a port nobody listens on (checked free above)
  config.p2p.bootstrap = [`/ip4/127.0.0.1/tcp/${base + 1000}/p2p/12D3KooWPigX3S3rwKRDxaZpK7wwsFyHfEoJpMBZALpcw5hhCUVf`]
  config.p2p.bootstrapTimeoutMs = 2000
  await writeFile(join(home, 'config.json'), JSON.stringify(config))
  const r = await runCli(t, ['start', '--home', home])
  assertOneLineError(r, /could not reach any of the 1 bootstrap peer\(s\) in p2p\.bootstrap in .*config\.json within 2000 ms/)
  await assert.rejects(access(join(home, 'node.pid')))
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} stops a running node cleanly with exit 0`, async (t) => {
    const api = await freePortBase(1)
    const home = await initHomeCli(t, { api, p2p: 0 })
    const { child, done } = spawnCli(t, ['start', '--home', home])
    await waitFor('the API', async () => ((await fetch(`http://127.0.0.1:${api}/mesh/status`)).ok ? true : undefined), 20_000)
    const pid = Number((await readFile(join(home, 'node.pid'), 'utf8')).trim())
    assert.equal(pid, child.pid)
    child.kill(signal)
    const r = await done
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /"msg":"node stopped"/)
    await assert.rejects(access(join(home, 'node.pid')))
  })
}

test('a second node on the same home is refused while the first runs', async (t) => {
  const api = await freePortBase(1)
  const home = await initHomeCli(t, { api, p2p: 0 })
  const { child } = spawnCli(t, ['start', '--home', home])
  await waitFor('the API', async () => ((await fetch(`http://127.0.0.1:${api}/mesh/status`)).ok ? true : undefined), 20_000)
  assertOneLineError(await runCli(t, ['start', '--home', home]), new RegExp(`another llmesh node \\(pid ${child.pid}\\) is running`))
})

test('status against no node says so', async (t) => {
  const port = await freePortBase(1)
  assertOneLineError(await runCli(t, ['status', '--api', `http://127.0.0.1:${port}`]), /no node answered at/)
})

test('devnet refuses a directory that is not a devnet', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'precious.txt'), 'keep me')
  assertOneLineError(await runCli(t, ['devnet', '--dir', dir]), /is not a devnet directory/)
  assert.equal(await readFile(join(dir, 'precious.txt'), 'utf8'), 'keep me')
})

test('devnet refuses a taken port before starting anything', async (t) => {
  const base = await freePortBase(2)
  await occupy(t, base + 1)
  const dir = join(await tempDir(t), 'dn')
  assertOneLineError(
    await runCli(t, ['devnet', '--nodes', '2', '--dir', dir, '--base-port', String(base)]),
    new RegExp(`port ${base + 1} \\(node-1 API\\) is already in use`)
  )
})

test('devnet says why a node that died at start-up died, in its one error line', async (t) => {
  const base = await freePortBase(2)
  const dir = join(await tempDir(t), 'dn')
  // the nodes refuse this; the devnet itself starts them
  const r = await runCli(t, ['devnet', '--nodes', '2', '--dir', dir, '--base-port', String(base)], 60_000, { LLMESH_LOG_LEVEL: 'loud' })
  assertOneLineError(r, /node-\d exited during start-up \(code 1\), last output: .*LLMESH_LOG_LEVEL=loud is not a log level/)
})

test('a node whose chain store was damaged refuses to start with one line, rather than fork', async (t) => {
  const api = await freePortBase(1)
  const home = await initHomeCli(t, { api, p2p: 0 })
  const signer = signerFromPrivateKey(await loadIdentityKey(join(home, 'identity.key')))
  await writeFile(
    join(home, 'genesis.json'),
    JSON.stringify({
      chainId: 'llmesh-solo',
      genesisTime: Date.now(),
      params: { blockTimeMs: 500 },
      accounts: [{ address: signer.address, balance: '1000' }],
      validators: [{ address: signer.address, stake: '10000000' }]
    })
  )
  const configPath = join(home, 'config.json')
  const config = JSON.parse(await readFile(configPath, 'utf8'))
  config.roles = ['validator']
  config.chain = { genesis: 'genesis.json' }
  await writeFile(configPath, JSON.stringify(config))

  // a lone validator commits blocks by itself
  const first = spawnCli(t, ['start', '--home', home])
  await waitFor(
    'height 2',
    async () => {
      const s = (await (await fetch(`http://127.0.0.1:${api}/mesh/chain/status`)).json()) as { height: number }
      return s.height >= 2 ? true : undefined
    },
    30_000
  )
  first.child.kill('SIGTERM')
  assert.equal((await first.done).code, 0)

  const db = new ClassicLevel<string, Uint8Array>(join(home, 'chain', 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  const raw = (await db.get('state')) ?? assert.fail('no state in the store')
  const damaged = raw.slice()
  damaged[Math.floor(damaged.length / 2)] = (damaged[Math.floor(damaged.length / 2)] ?? 0) ^ 0x40
  await db.put('state', damaged)
  await db.close()
  assertOneLineError(await runCli(t, ['start', '--home', home]), /chain store .* is corrupted/)

  // a genesis file that does not parse is named too
  await writeFile(join(home, 'genesis.json'), '{"chainId": ')
  assertOneLineError(await runCli(t, ['start', '--home', home]), /cannot read the genesis file .*genesis\.json \(chain\.genesis\)/)
})
