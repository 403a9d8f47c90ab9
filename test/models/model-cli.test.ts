import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import Fastify from 'fastify'
import { registerModelRoutes } from '../../src/gateway/model-routes.ts'
import { ModelProviderError, type StoredModel } from '../../src/models/index.ts'
import { runCli } from '../cli-runner.ts'
import { tempDir } from '../helpers.ts'

const CID_TEXT = 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4'
const MODEL: StoredModel = { cid: CID_TEXT, name: 'tiny', size: 1000, sha256: 'a'.repeat(64), blocks: 7, addedAt: 1, source: 'peer' }

test('llmesh model get prints the model a node fetched, and one error line when it fails', async (t) => {
  const app = Fastify()
  registerModelRoutes(app, {
    list: async () => [],
    fetch: async (cid, options) => {
      options?.onProgress?.({
        phase: 'fetching',
        providers: 1,
        blocksSeen: 1,
        blocksPresent: 0,
        blocksFetched: 1,
        bytesFetched: 10,
        bytesPresent: 0,
        fileSize: 1000
      })
      if (String(cid) === CID_TEXT) return MODEL
      throw new ModelProviderError('MODEL_NO_PROVIDER', String(cid), 0, `no peer provides model ${cid}`, 'check the CID')
    }
  })
  t.after(() => app.close())
  const api = await app.listen({ host: '127.0.0.1', port: 0 })

  const ok = await runCli(t, ['model', 'get', CID_TEXT, '--api', api])
  assert.equal(ok.code, 0, ok.stderr)
  const [cidLine, modelLine] = ok.stdout.trim().split('\n')
  assert.equal(cidLine, CID_TEXT)
  assert.match(modelLine ?? '', /^fetched bafy.* {2}tiny {2}0\.0 MiB {2}7 blocks/)
  assert.equal(ok.stderr, '', 'no progress when stderr is not a terminal')

  const other = 'bafkreidyw6p2v2czfqcdezw7xtkbgps5cifzcfns4hyejuiqbz4tvxsagm'
  const missing = await runCli(t, ['model', 'get', other, '--api', api])
  assert.equal(missing.code, 1)
  assert.equal(missing.stderr.trim(), `llmesh: error: no peer provides model ${other}; check the CID`)

  const bad = await runCli(t, ['model', 'get', 'nope', '--api', api])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr.trim(), /^llmesh: error: \/mesh\/models\/fetch: "nope" is not a CID.*\(invalid_cid\)$/)
  assert.equal(bad.stderr.trim().split('\n').length, 1)
})

test('llmesh model rm refuses while a node runs on the home', async (t) => {
  const home = join(await tempDir(t), 'home')
  await mkdir(home, { recursive: true })
  // this test process stands in for the running node
  await writeFile(join(home, 'node.pid'), `${process.pid}\n`)
  const rm = await runCli(t, ['model', 'rm', CID_TEXT, '--home', home])
  assert.equal(rm.code, 1)
  assert.match(rm.stderr.trim(), new RegExp(`^llmesh: error: a node \\(pid ${process.pid}\\) is running on .*stop the node`))
  assert.equal(rm.stderr.trim().split('\n').length, 1)
})
