import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import type { PeerId } from '@libp2p/interface'
import Fastify from 'fastify'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import pino from 'pino'
import type { LlmeshError } from '../../src/errors/index.ts'
import { type ModelCatalog, type ModelFetchEvent, registerModelRoutes } from '../../src/gateway/model-routes.ts'
import {
  lockStoreDir,
  type ModelFetchProgress,
  ModelService,
  type ModelServiceInit,
  ModelStore,
  modelStoreDir,
  type StoredModel
} from '../../src/models/index.ts'
import type { MeshLibp2p } from '../../src/p2p/index.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { countBlockFiles, paddedModel, pseudoRandomBytes, sha256, sha256OfFile, withInsertion, writeTemp } from './fixtures.ts'
import { loopbackAddress, startMeshLibp2p } from './libp2p-fixture.ts'

const log = pino({ level: process.env.LLMESH_TEST_LOG ?? 'silent' })

/** A libp2p node on a random loopback port with the node's stack (kad-dht in server mode) and a model service on a fresh home. */
async function startPeer(t: TestContext, init: Partial<ModelServiceInit> = {}) {
  const home = await tempDir(t, 'llmesh-msvc-')
  const libp2p = await startMeshLibp2p(t)
  const service = new ModelService(
    { libp2p, log },
    { dir: modelStoreDir(home), indexPollMs: 200, provideRetryMs: 300, findProvidersTimeoutMs: 5_000, blockTimeoutMs: 10_000, ...init }
  )
  await service.start()
  t.after(() => service.stop())
  return { home, libp2p, service }
}

async function connect(from: MeshLibp2p, to: MeshLibp2p): Promise<void> {
  await from.dial(loopbackAddress(to))
}

/** Providers of `cid` as `libp2p` finds them through the DHT. */
async function providersOf(libp2p: MeshLibp2p, cid: string): Promise<PeerId[]> {
  const found: PeerId[] = []
  try {
    for await (const p of libp2p.contentRouting.findProviders(CID.parse(cid), { signal: AbortSignal.timeout(3_000) })) found.push(p.id)
  } catch {}
  return found
}

const hasCode =
  (code: string) =>
  (err: LlmeshError): boolean => {
    assert.equal(err.code, code, err.message)
    return true
  }

test('a node fetches by CID a model another node announced on the DHT; a v2 moves only the changed blocks', async (t) => {
  const a = await startPeer(t)
  const b = await startPeer(t)
  const c = await startPeer(t)
  const v1Bytes = paddedModel(6 * 1024 * 1024, 41)
  const v2Bytes = withInsertion(v1Bytes, 24, pseudoRandomBytes(300, 42))
  const v1 = await a.service.store.add(await writeTemp(a.home, 'v1.gguf', v1Bytes), { name: 'm v1' })
  const v2 = await a.service.store.add(await writeTemp(a.home, 'v2.gguf', v2Bytes), { name: 'm v2' })
  // A - B - C: C is not connected to A, so it can only learn of A through the DHT
  await connect(b.libp2p, a.libp2p)
  await connect(c.libp2p, b.libp2p)
  const aId = a.libp2p.peerId
  assert.equal(c.libp2p.getConnections(aId).length, 0)
  await waitFor(
    'A announced v1 and v2',
    async () => {
      const [p1, p2] = await Promise.all([providersOf(c.libp2p, v1.cid), providersOf(c.libp2p, v2.cid)])
      return p1.some((p) => p.equals(aId)) && p2.some((p) => p.equals(aId)) ? true : undefined
    },
    20_000
  )

  // two callers for one CID share one fetch
  const progress: ModelFetchProgress[] = []
  const joined: ModelFetchProgress[] = []
  const [got, again] = await Promise.all([
    c.service.fetch(v1.cid, { onProgress: (p) => progress.push(p) }),
    c.service.fetch(v1.cid, { onProgress: (p) => joined.push(p) })
  ])
  assert.deepEqual(again, got)
  assert.equal(got.cid, v1.cid)
  assert.equal(got.source, 'peer')
  assert.ok(joined.length > 0)
  assert.deepEqual([...new Set(progress.map((p) => p.phase))], ['finding-providers', 'connecting', 'fetching'], 'the phases, in order')
  assert.equal(progress.at(-1)?.blocksFetched, v1.blocks)
  assert.ok(c.libp2p.getConnections(aId).length > 0, 'C is connected to the provider it found')
  const out = join(c.home, 'out-v1.gguf')
  await c.service.store.export(v1.cid, out)
  assert.equal(await sha256OfFile(out), sha256(v1Bytes))

  // v2: 300 bytes inserted after the header; C holds v1, so only the changed blocks cross
  progress.length = 0
  const got2 = await c.service.fetch(v2.cid, { onProgress: (p) => progress.push(p) })
  const last = progress.at(-1)
  assert.ok(last != null)
  t.diagnostic(`v2: ${last.blocksFetched} of ${v2.blocks} blocks fetched (${last.bytesFetched} of ${v2.size} bytes)`)
  assert.ok(last.blocksFetched >= 2 && last.blocksFetched <= 3, `${last.blocksFetched} blocks fetched`)
  assert.ok(last.blocksFetched < v2.blocks / 4, `${last.blocksFetched} of ${v2.blocks}`)
  assert.equal(last.blocksPresent, v2.blocks - last.blocksFetched)
  assert.equal(last.bytesPresent + last.bytesFetched >= v2.size, true, 'progress covers the whole file')
  await c.service.store.export(got2.cid, join(c.home, 'out-v2.gguf'))
  assert.equal(await sha256OfFile(join(c.home, 'out-v2.gguf')), sha256(v2Bytes))
  assert.equal(await countBlockFiles(c.service.store), await countBlockFiles(a.service.store))

  // what C fetched it announces in turn
  const cId = c.libp2p.peerId
  await waitFor('C announced v1', async () => ((await providersOf(b.libp2p, v1.cid)).some((p) => p.equals(cId)) ? true : undefined), 20_000)

  // a model stored already is returned without a lookup
  progress.length = 0
  assert.equal((await c.service.fetch(v1.cid, { onProgress: (p) => progress.push(p) })).cid, v1.cid)
  assert.equal(progress.length, 0)
})

test('a CID no peer provides fails with MODEL_NO_PROVIDER, and nothing is kept', async (t) => {
  const a = await startPeer(t)
  const b = await startPeer(t)
  await connect(b.libp2p, a.libp2p)
  const missing = CID.createV1(raw.code, await sha256Hasher.digest(pseudoRandomBytes(64, 43)))
  await assert.rejects(b.service.fetch(missing), (err: LlmeshError) => {
    hasCode('MODEL_NO_PROVIDER')(err)
    assert.match(err.message, /no peer provides model/)
    return true
  })
  await assert.rejects(b.service.fetch('not-a-cid'), hasCode('INVALID_CID'))
  // through the route: a 200 stream that ends with the typed error
  const app = Fastify()
  registerModelRoutes(app, b.service)
  t.after(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/mesh/models/fetch', payload: { cid: missing.toString() } })
  const last = JSON.parse(res.payload.trim().split('\n').at(-1) ?? '{}')
  assert.equal(last.event, 'error')
  assert.equal(last.code, 'MODEL_NO_PROVIDER')
  assert.deepEqual((await app.inject({ method: 'GET', url: '/mesh/models' })).json(), { models: [] })
  assert.deepEqual(await b.service.list(), [])
  assert.equal(await countBlockFiles(b.service.store), 0)
})

test('a model another process adds to the store of a running node is listed and announced without a restart', async (t) => {
  const a = await startPeer(t)
  const b = await startPeer(t)
  await connect(b.libp2p, a.libp2p)
  assert.deepEqual(await a.service.list(), [])
  // what `llmesh model add --home` does: its own ModelStore on the same directory
  const cli = new ModelStore({ dir: modelStoreDir(a.home) })
  await cli.start()
  t.after(() => cli.stop())
  const added = await cli.add(await writeTemp(a.home, 'm.gguf', paddedModel(600 * 1024, 44)))
  assert.deepEqual(
    (await a.service.list()).map((m) => m.cid),
    [added.cid]
  )
  const aId = a.libp2p.peerId
  await waitFor(
    'A announced the added model',
    async () => ((await providersOf(b.libp2p, added.cid)).some((p) => p.equals(aId)) ? true : undefined),
    20_000
  )
  const got = await b.service.fetch(added.cid)
  assert.equal(got.sha256, added.sha256)
})

test("two stores on one directory change it one at a time and lose no model; a dead holder's lock is taken over", async (t) => {
  const dir = join(await tempDir(t), 'models')
  const one = new ModelStore({ dir })
  const two = new ModelStore({ dir })
  await one.start()
  await two.start()
  t.after(() => one.stop())
  t.after(() => two.stop())
  const files = await Promise.all(
    [0, 1, 2, 3].map((i) =>
      writeTemp(join(dir, '..'), `m${i}.gguf`, withInsertion(paddedModel(300 * 1024), 24, pseudoRandomBytes(16, 50 + i)))
    )
  )
  const added = await Promise.all(files.map((f, i) => (i % 2 === 0 ? one : two).add(f)))
  const fresh = new ModelStore({ dir })
  await fresh.start()
  t.after(() => fresh.stop())
  assert.deepEqual(
    fresh
      .list()
      .map((m) => m.cid)
      .sort(),
    added.map((m) => m.cid).sort()
  )
  // (true unless `one` wrote the index last: every change re-reads the index first)
  await one.refresh()
  assert.equal(one.list().length, 4)
  assert.equal(await one.refresh(), false)

  // held by a live process: a change waits, then fails with MODEL_STORE_BUSY
  const release = await lockStoreDir(join(dir, 'store.lock'))
  const impatient = new ModelStore({ dir, lockWaitMs: 300 })
  await impatient.start()
  t.after(() => impatient.stop())
  let waitedFor: number | undefined
  const patient = new ModelStore({ dir, onLockWait: (pid) => (waitedFor = pid) })
  await patient.start()
  t.after(() => patient.stop())
  await assert.rejects(impatient.remove(added[0]?.cid ?? ''), hasCode('MODEL_STORE_BUSY'))
  const removing = patient.remove(added[0]?.cid ?? '')
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(waitedFor, process.pid)
  await release()
  assert.equal((await removing).cid, added[0]?.cid)

  // left by a process that died: taken over
  await writeFile(join(dir, 'store.lock'), '2147483646 deadbeef\n')
  assert.equal((await impatient.remove(added[1]?.cid ?? '')).cid, added[1]?.cid)
})

/** A ModelCatalog whose fetch plays a script; records the signal it was given. */
function fakeCatalog(script: (signal: AbortSignal, onProgress: (p: ModelFetchProgress) => void) => Promise<StoredModel>): ModelCatalog & {
  signals: AbortSignal[]
} {
  const signals: AbortSignal[] = []
  const model: StoredModel = {
    cid: 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4',
    name: 'tiny',
    size: 1000,
    sha256: '0'.repeat(64),
    blocks: 7,
    addedAt: 1,
    source: 'file'
  }
  return {
    signals,
    list: async () => [model],
    fetch: async (_cid, options = {}) => {
      const signal = options.signal ?? new AbortController().signal
      signals.push(signal)
      return script(signal, options.onProgress ?? (() => {}))
    }
  }
}

const base = { blocksSeen: 0, blocksPresent: 0, blocksFetched: 0, bytesFetched: 0, bytesPresent: 0, fileSize: 0, providers: 1 }

test('GET /mesh/models and POST /mesh/models/fetch (NDJSON progress, errors, bad input)', async (t) => {
  const cid = 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4'
  const catalog = fakeCatalog(async (_signal, onProgress) => {
    onProgress({ ...base, phase: 'finding-providers', providers: 0 })
    onProgress({ ...base, phase: 'connecting' })
    onProgress({
      ...base,
      phase: 'fetching',
      blocksSeen: 3,
      blocksPresent: 1,
      bytesPresent: 400,
      blocksFetched: 2,
      bytesFetched: 500,
      fileSize: 1000
    })
    return (await catalog.list())[0] as StoredModel
  })
  const app = Fastify()
  registerModelRoutes(app, catalog)
  t.after(() => app.close())

  const list = await app.inject({ method: 'GET', url: '/mesh/models' })
  assert.equal(list.statusCode, 200)
  assert.deepEqual(
    list.json().models.map((m: StoredModel) => [m.cid, m.name, m.size, m.blocks, m.sha256]),
    [[cid, 'tiny', 1000, 7, '0'.repeat(64)]]
  )

  const res = await app.inject({ method: 'POST', url: '/mesh/models/fetch', payload: { cid } })
  assert.equal(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /application\/x-ndjson/)
  const events = res.payload
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ModelFetchEvent)
  assert.deepEqual(
    events.map((e) => (e.event === 'progress' ? `${e.event}:${e.phase}` : e.event)),
    ['progress:finding-providers', 'progress:connecting', 'progress:fetching', 'done']
  )
  assert.deepEqual(events[2], {
    event: 'progress',
    phase: 'fetching',
    providers: 1,
    blocks: 3,
    blocksFetched: 2,
    bytes: 900,
    bytesFetched: 500,
    totalBytes: 1000
  })
  assert.equal(events[3]?.event === 'done' && events[3].model.cid, cid)

  for (const payload of [{ cid: 'nope' }, { cid: '' }, { cid: cid, extra: 1 }, {}, { cid: 'x'.repeat(300) }]) {
    const bad = await app.inject({ method: 'POST', url: '/mesh/models/fetch', payload })
    assert.equal(bad.statusCode, 400, JSON.stringify(payload))
    assert.equal(typeof bad.json().error.message, 'string')
    assert.ok(['invalid_cid', 'invalid_body'].includes(bad.json().error.code))
  }
  const huge = await app.inject({ method: 'POST', url: '/mesh/models/fetch', payload: { cid: 'b'.repeat(5000) } })
  assert.equal(huge.statusCode, 413)
  assert.equal(catalog.signals.length, 1, 'bad input started no fetch')

  // a failing fetch ends the stream with an error line carrying the code
  const failing = Fastify()
  const { ModelProviderError } = await import('../../src/models/index.ts')
  registerModelRoutes(
    failing,
    fakeCatalog(async () => {
      throw new ModelProviderError('MODEL_NO_PROVIDER', cid, 0, `no peer provides model ${cid}`, 'check the CID')
    })
  )
  t.after(() => failing.close())
  const err = await failing.inject({ method: 'POST', url: '/mesh/models/fetch', payload: { cid } })
  assert.equal(err.statusCode, 200)
  assert.deepEqual(JSON.parse(err.payload.trim()), {
    event: 'error',
    message: `no peer provides model ${cid}; check the CID`,
    code: 'MODEL_NO_PROVIDER'
  })

  // a node without models
  const none = Fastify()
  registerModelRoutes(none, undefined)
  t.after(() => none.close())
  assert.equal((await none.inject({ method: 'GET', url: '/mesh/models' })).json().error.code, 'no_models')
})

test('a client that disconnects from POST /mesh/models/fetch aborts the fetch', async (t) => {
  const catalog = fakeCatalog(
    (signal, onProgress) =>
      new Promise((_resolve, reject) => {
        onProgress({ ...base, phase: 'finding-providers', providers: 0 })
        signal.addEventListener('abort', () => reject(signal.reason), { once: true })
      })
  )
  const app = Fastify()
  registerModelRoutes(app, catalog)
  t.after(() => app.close())
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }))
  // node:http rather than fetch: undici keeps a second socket open, which holds app.close() for a minute
  const first = await new Promise<string>((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: '/mesh/models/fetch', method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) =>
        res.once('data', (chunk) => {
          resolve(String(chunk))
          req.destroy() // the client goes away mid-stream
        })
    )
    req.once('error', reject)
    req.end(JSON.stringify({ cid: 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4' }))
  })
  assert.match(first, /"phase":"finding-providers"/)
  await waitFor('the fetch to be aborted', async () => (catalog.signals[0]?.aborted === true ? true : undefined), 5_000, 20)
})
