import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { writeTinyModel } from '../../src/inference/index.ts'
import { runCli } from '../cli-runner.ts'
import { tempDir } from '../helpers.ts'

test('llmesh model add / ls / export / rm on a node home', async (t) => {
  const dir = await tempDir(t)
  const home = join(dir, 'home')
  const file = join(dir, 'tiny.gguf')
  await writeTinyModel(file, { seed: 0 })
  const add = await runCli(t, ['model', 'add', file, '--name', 'tiny', '--home', home])
  assert.equal(add.code, 0, add.stderr)
  const cid = add.stdout.split('\n')[0] ?? ''
  assert.equal(cid, 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4')
  const ls = await runCli(t, ['model', 'ls', '--json', '--home', home])
  assert.deepEqual(
    JSON.parse(ls.stdout).map((m: { cid: string; name: string }) => [m.cid, m.name]),
    [[cid, 'tiny']]
  )
  const out = join(dir, 'out.gguf')
  assert.equal((await runCli(t, ['model', 'export', cid, out, '--home', home])).code, 0)
  assert.deepEqual(await readFile(out), await readFile(file))
  const rm = await runCli(t, ['model', 'rm', cid, '--home', home])
  assert.match(rm.stdout, /removed .*: 7 blocks deleted/)

  const notGguf = join(dir, 'notes.txt')
  await writeFile(notGguf, 'not a model')
  const bad = await runCli(t, ['model', 'add', notGguf, '--home', home])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr.trim(), /^llmesh: error: .*notes\.txt is not a GGUF model/)
  assert.equal(bad.stderr.trim().split('\n').length, 1)
})
