import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { ConfigError, loadConfig, parseConfig, renderConfig } from '../../src/node/index.ts'
import { DEFAULT_API_PORT, LIMITS } from '../../src/params/index.ts'
import { tempDir } from '../helpers.ts'

const PEER = '12D3KooWPigX3S3rwKRDxaZpK7wwsFyHfEoJpMBZALpcw5hhCUVf'

function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`)
    return err
  }
  assert.fail('expected a ConfigError')
}

test('an empty config gets every default, production-safe', () => {
  const c = parseConfig({}, 'c.json')
  assert.deepEqual(c.roles, ['edge'])
  assert.equal(c.api.host, '127.0.0.1')
  assert.equal(c.api.port, DEFAULT_API_PORT)
  assert.equal(c.p2p.localNetwork, false)
  assert.equal(c.p2p.maxConnections, LIMITS.maxConnections)
  assert.deepEqual(c.p2p.bootstrap, [])
})

test('rendered config parses back to the same value', () => {
  const c = parseConfig({ roles: ['host', 'validator'], api: { port: 9000 } }, 'c.json')
  assert.deepEqual(parseConfig(JSON.parse(renderConfig(c)), 'c.json'), c)
})

test('bad settings are named by their path', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ roles: ['miner'] }, /roles\.0/],
    [{ roles: ['edge', 'edge'] }, /roles: lists a role twice/],
    [{ api: { port: 70_000 } }, /api\.port/],
    [{ api: { port: '8080' } }, /api\.port/],
    [{ p2p: { listen: ['not-a-multiaddr'] } }, /p2p\.listen\.0: not a valid multiaddr/],
    [{ p2p: { listen: [] } }, /p2p\.listen/],
    [{ p2p: { bootstrap: ['/ip4/1.2.3.4/tcp/4001'] } }, /p2p\.bootstrap\.0: must end with \/p2p\//],
    [{ p2p: { bootstrapTimeoutMs: 5 } }, /p2p\.bootstrapTimeoutMs/],
    [{ log: { level: 'loud' } }, /log\.level/],
    [{ apii: {} }, /\(top level\)|apii/],
    [[], /top level/]
  ]
  for (const [input, pattern] of cases) {
    const err = configError(() => parseConfig(input, '/x/config.json'))
    assert.equal(err.code, 'CONFIG_INVALID')
    assert.match(err.message, /config \/x\/config\.json is invalid/)
    assert.match(err.message, pattern, `input ${JSON.stringify(input)} gave: ${err.message}`)
  }
})

test('a bootstrap address with a peer id is accepted', () => {
  const c = parseConfig({ p2p: { bootstrap: [`/ip4/10.0.0.1/tcp/4001/p2p/${PEER}`] } }, 'c.json')
  assert.equal(c.p2p.bootstrap.length, 1)
})

test('loadConfig: missing, malformed, oversized files give one clear error naming the file', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'config.json')
  await assert.rejects(
    loadConfig(path),
    (err: ConfigError) => err.code === 'CONFIG_NOT_FOUND' && err.message.includes(path) && /llmesh init/.test(err.message)
  )

  await writeFile(path, '{ "roles": ["edge"], }')
  await assert.rejects(
    loadConfig(path),
    (err: ConfigError) => err.code === 'CONFIG_INVALID' && /not valid JSON/.test(err.message) && err.message.includes(path)
  )

  await writeFile(path, ' '.repeat(LIMITS.maxConfigBytes + 1))
  await assert.rejects(loadConfig(path), (err: ConfigError) => err.code === 'CONFIG_INVALID' && /over the .*-byte limit/.test(err.message))
})

test('LLMESH_LOG_LEVEL overrides log.level and is checked', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'config.json')
  await writeFile(path, renderConfig(parseConfig({}, path)))
  assert.equal((await loadConfig(path, { LLMESH_LOG_LEVEL: 'debug' })).log.level, 'debug')
  assert.equal((await loadConfig(path, {})).log.level, 'info')
  await assert.rejects(loadConfig(path, { LLMESH_LOG_LEVEL: 'chatty' }), /LLMESH_LOG_LEVEL=chatty is not a log level/)
})
