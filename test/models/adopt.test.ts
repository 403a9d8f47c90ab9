import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { FsBlockstore } from 'blockstore-fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import type { CID } from 'multiformats/cid'
import type { LlmeshError } from '../../src/errors/index.ts'
import { type BlockReader, type FetchProgress, type ModelStore, modelImporterOptions } from '../../src/models/index.ts'
import { tempDir } from '../helpers.ts'
import { countBlockFiles, paddedModel, pseudoRandomBytes, sha256, startStore, withInsertion, writeTemp } from './fixtures.ts'

/** A "peer" that serves the blocks of `store`, counting what it sends. */
function peerOf(store: ModelStore): { fetchBlock: BlockReader; sent: CID[] } {
  const sent: CID[] = []
  return {
    sent,
    fetchBlock: async (cid) => {
      const bytes = await store.readBlock(cid)
      if (bytes == null) throw new Error(`peer lacks ${cid}`)
      sent.push(cid)
      return bytes
    }
  }
}

/** A "peer" that serves whatever is in a plain blockstore. */
function blockstorePeer(blocks: FsBlockstore): BlockReader {
  return async (cid) => {
    const parts: Uint8Array[] = []
    for await (const part of blocks.get(cid)) parts.push(part)
    return Buffer.concat(parts)
  }
}

const hasCode =
  (code: string) =>
  (err: LlmeshError): boolean => {
    assert.equal(err.code, code, err.message)
    return true
  }

test('adopting a model from a peer takes only the blocks the store lacks and lists it verified', async (t) => {
  const a = await startStore(t)
  const b = await startStore(t)
  const v1Bytes = paddedModel(4 * 1024 * 1024, 11)
  const v2Bytes = withInsertion(v1Bytes, 40, pseudoRandomBytes(120, 12))
  const v1 = await a.store.add(await writeTemp(a.dir, 'v1.gguf', v1Bytes))
  const v2 = await a.store.add(await writeTemp(a.dir, 'v2.gguf', v2Bytes))

  const peer = peerOf(a.store)
  const progress: FetchProgress[] = []
  const got = await b.store.adopt(v1.cid, peer.fetchBlock, { name: 'from a', onProgress: (p) => progress.push(p) })
  assert.equal(got.cid, v1.cid)
  assert.equal(got.sha256, v1.sha256)
  assert.equal(got.size, v1.size)
  assert.equal(got.blocks, v1.blocks)
  assert.equal(got.source, 'peer')
  assert.equal(got.name, 'from a')
  assert.equal(peer.sent.length, v1.blocks)
  const last = progress.at(-1)
  assert.equal(last?.blocksFetched, v1.blocks)
  assert.equal(last?.fileSize, v1.size)
  assert.ok((last?.bytesFetched ?? 0) >= v1.size)
  assert.equal((await b.store.export(v1.cid, join(b.dir, 'v1.gguf'))).sha256, sha256(v1Bytes))

  peer.sent.length = 0
  const got2 = await b.store.adopt(v2.cid, peer.fetchBlock)
  assert.equal(got2.sha256, sha256(v2Bytes))
  assert.ok(peer.sent.length <= 3, `${peer.sent.length} of ${v2.blocks} blocks fetched for v2`)
  assert.equal(await countBlockFiles(b.store), await countBlockFiles(a.store))
  // adopting a stored model again fetches nothing
  peer.sent.length = 0
  assert.deepEqual(await b.store.adopt(v2.cid, peer.fetchBlock), got2)
  assert.equal(peer.sent.length, 0)
})

test('a peer that sends wrong bytes is caught and what it sent is removed', async (t) => {
  const a = await startStore(t)
  const b = await startStore(t)
  const model = await a.store.add(await writeTemp(a.dir, 'm.gguf', paddedModel(3 * 1024 * 1024, 13)))
  const honest = peerOf(a.store).fetchBlock
  let served = 0
  const liar: BlockReader = async (cid) => {
    const bytes = await honest(cid)
    // the root and two leaves are fine, then one byte is flipped
    if (++served === 4) bytes[0] = (bytes[0] ?? 0) ^ 1
    return bytes
  }
  await assert.rejects(b.store.adopt(model.cid, liar), hasCode('MODEL_DAG_INVALID'))
  assert.equal(await countBlockFiles(b.store), 0)
  assert.deepEqual(b.store.list(), [])
  // a peer that fails midway: the same clean-up
  let count = 0
  const flaky: BlockReader = async (cid) => {
    if (++count === 3) throw new Error('connection reset')
    return honest(cid)
  }
  await assert.rejects(b.store.adopt(model.cid, flaky), /connection reset/)
  assert.equal(await countBlockFiles(b.store), 0)
  // and an honest one afterwards works
  assert.equal((await b.store.adopt(model.cid, honest)).sha256, model.sha256)
})

test('DAGs that are not a single bounded UnixFS file are refused before their content is fetched', async (t) => {
  const b = await startStore(t, { maxModelBytes: 2 * 1024 * 1024 })
  const dir = await tempDir(t)
  const foreign = new FsBlockstore(join(dir, 'foreign'))
  await foreign.open()
  const peer = blockstorePeer(foreign)

  // a directory holding a model
  let dirRoot: CID | undefined
  for await (const entry of importer([{ path: 'models/m.gguf', content: paddedModel(300_000) }], foreign, {
    ...modelImporterOptions(),
    wrapWithDirectory: true
  })) {
    dirRoot = entry.cid
  }
  await assert.rejects(b.store.adopt(dirRoot as CID, peer), hasCode('MODEL_DAG_UNSUPPORTED'))

  // a file larger than this store takes: refused from its root alone
  let fetched = 0
  const counting: BlockReader = async (cid) => {
    fetched++
    return peer(cid)
  }
  const big = await importer([{ content: pseudoRandomBytes(3 * 1024 * 1024, 5) }], foreign, modelImporterOptions()).next()
  await assert.rejects(b.store.adopt((big.value as { cid: CID }).cid, counting), hasCode('MODEL_DAG_TOO_LARGE'))
  assert.equal(fetched, 1)

  // a standard fixed-size DAG of another tool is a file like any other
  const other = await importer([{ content: paddedModel(1024 * 1024) }], foreign, {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: 65_536 })
  }).next()
  const adopted = await b.store.adopt((other.value as { cid: CID }).cid, peer)
  assert.equal(adopted.sha256, sha256(paddedModel(1024 * 1024)))
  assert.equal(adopted.blocks, 17)
  assert.equal(await countBlockFiles(b.store), 17)
})
