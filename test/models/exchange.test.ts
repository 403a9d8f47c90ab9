import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { type FetchProgress, ModelExchange } from '../../src/models/index.ts'
import type { MeshLibp2p } from '../../src/p2p/index.ts'
import { countBlockFiles, paddedModel, pseudoRandomBytes, sha256, startStore, withInsertion, writeTemp } from './fixtures.ts'
import { loopbackAddress, startMeshLibp2p } from './libp2p-fixture.ts'

async function startExchange(t: Parameters<typeof startStore>[0], libp2p: MeshLibp2p) {
  const { store, dir } = await startStore(t)
  const exchange = new ModelExchange({ libp2p, store }, { blockTimeoutMs: 10_000 })
  await exchange.start()
  t.after(() => exchange.stop())
  return { store, dir, exchange }
}

test('node B fetches a model from node A over bitswap, then a v2 moving only the changed blocks', async (t) => {
  const nodeA = await startMeshLibp2p(t)
  const nodeB = await startMeshLibp2p(t)
  const a = await startExchange(t, nodeA)
  const b = await startExchange(t, nodeB)
  const v1Bytes = paddedModel(8 * 1024 * 1024, 21)
  const v2Bytes = withInsertion(v1Bytes, 24, pseudoRandomBytes(300, 22))
  const v1 = await a.store.add(await writeTemp(a.dir, 'v1.gguf', v1Bytes))
  const v2 = await a.store.add(await writeTemp(a.dir, 'v2.gguf', v2Bytes))
  await nodeB.dial(loopbackAddress(nodeA))

  const progress: FetchProgress[] = []
  const started = performance.now()
  const got = await b.exchange.fetch(v1.cid, { providers: [nodeA.peerId], onProgress: (p) => progress.push(p) })
  const v1Ms = performance.now() - started
  assert.equal(got.cid, v1.cid)
  assert.equal(got.source, 'peer')
  const out = join(b.dir, 'v1.gguf')
  assert.equal((await b.store.export(v1.cid, out)).sha256, sha256(v1Bytes))
  const lastV1 = progress.at(-1)
  assert.equal(lastV1?.blocksFetched, v1.blocks)
  assert.ok((lastV1?.bytesFetched ?? 0) >= v1.size)

  // no providers named: bitswap asks the peers it is connected to
  progress.length = 0
  const got2 = await b.exchange.fetch(v2.cid, { onProgress: (p) => progress.push(p) })
  assert.equal((await b.store.export(got2.cid, join(b.dir, 'v2.gguf'))).sha256, sha256(v2Bytes))
  const lastV2 = progress.at(-1)
  const fetched = lastV2?.blocksFetched ?? Number.NaN
  t.diagnostic(
    `v1: ${v1.blocks} blocks, ${v1.size} bytes in ${v1Ms.toFixed(0)} ms; v2: ${fetched} of ${v2.blocks} blocks fetched (${lastV2?.bytesFetched} bytes)`
  )
  assert.ok(fetched >= 2 && fetched <= 3, `${fetched} blocks fetched for v2`)
  assert.ok(fetched / v2.blocks < 0.25, `${fetched} of ${v2.blocks} blocks fetched for v2`)
  assert.ok((lastV2?.bytesFetched ?? Number.POSITIVE_INFINITY) < v2.size / 4)
  assert.equal(lastV2?.blocksPresent, v2.blocks - fetched)
  assert.equal(await countBlockFiles(b.store), await countBlockFiles(a.store))

  // removed and fetched again from the same peer on the same connection (bitswap's serving side
  // must not swallow a repeated want: see doNotResendBlockWindow in ModelExchange)
  await b.store.remove(v1.cid)
  await b.store.remove(v2.cid)
  assert.equal(await countBlockFiles(b.store), 0)
  const again = await b.exchange.fetch(v2.cid, { signal: AbortSignal.timeout(20_000) })
  assert.equal((await b.store.export(again.cid, join(b.dir, 'v2-again.gguf'))).sha256, sha256(v2Bytes))
})

test('a model no peer has fails cleanly when the caller gives up, and nothing is kept', async (t) => {
  const nodeA = await startMeshLibp2p(t)
  const nodeB = await startMeshLibp2p(t)
  await startExchange(t, nodeA)
  const b = await startExchange(t, nodeB)
  await nodeB.dial(loopbackAddress(nodeA))
  const missing = CID.createV1(raw.code, await sha256Hasher.digest(pseudoRandomBytes(64, 31)))
  await assert.rejects(b.exchange.fetch(missing, { signal: AbortSignal.timeout(1_000) }), (err: Error) => err.name === 'TimeoutError')
  assert.equal(b.store.has(missing), false)
  assert.equal(await countBlockFiles(b.store), 0)
})
