import assert from 'node:assert/strict'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { type HomeError, homePaths, initHome, lockHome } from '../../src/node/index.ts'
import { tempDir } from '../helpers.ts'

test('init writes a readable config and a key, and refuses a second time without touching them', async (t) => {
  const home = join(await tempDir(t), 'home')
  const { paths } = await initHome(home, { roles: ['host'] })
  const config = await readFile(paths.config, 'utf8')
  const key = await readFile(paths.key)
  assert.match(config, /"roles": \[\n\s+"host"\n\s+\]/)
  await assert.rejects(initHome(home), (err: HomeError) => err.code === 'HOME_EXISTS')
  assert.equal(await readFile(paths.config, 'utf8'), config)
  assert.deepEqual(await readFile(paths.key), key)
  assert.deepEqual((await readdir(home)).sort(), ['config.json', 'identity.key'])
})

test('init with a bad config writes nothing', async (t) => {
  const home = join(await tempDir(t), 'home')
  await assert.rejects(initHome(home, { api: { port: -1 } }), /api\.port/)
  await assert.rejects(readdir(home), { code: 'ENOENT' })
})

test('init where only a key exists leaves no config behind', async (t) => {
  const home = await tempDir(t)
  await writeFile(join(home, 'identity.key'), 'x', { mode: 0o600 })
  await assert.rejects(initHome(home), /already exists/)
  assert.deepEqual(await readdir(home), ['identity.key'])
})

test('one home, one running node: the lock refuses a live owner and takes over a dead one', async (t) => {
  const paths = homePaths(await tempDir(t))
  const release = await lockHome(paths)
  assert.equal((await readFile(paths.pid, 'utf8')).trim(), String(process.pid))
  // a live process that is not us holds it: pid 1 always exists
  await release()
  await writeFile(paths.pid, '1\n')
  await assert.rejects(lockHome(paths), (err: HomeError) => err.code === 'HOME_LOCKED' && /pid 1/.test(err.message))
  // a pid that cannot exist (beyond pid_max) is stale and taken over
  await writeFile(paths.pid, '99999999\n')
  const release2 = await lockHome(paths)
  await release2()
  await assert.rejects(readFile(paths.pid), { code: 'ENOENT' })
})
