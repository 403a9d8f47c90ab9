import assert from 'node:assert/strict'
import { chmod, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { FsBlockstore } from 'blockstore-fs'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import type { LlmeshError } from '../../src/errors/index.ts'
import { tinyModelBytes, writeTinyModel } from '../../src/inference/index.ts'
import { ModelStore, parseModelCid } from '../../src/models/index.ts'
import { countBlockFiles, paddedModel, pseudoRandomBytes, sha256, sha256OfFile, startStore, withInsertion, writeTemp } from './fixtures.ts'

/**
 * The CID of the built-in tiny model of seed 0 under the import parameters of docs/models.md.
 * It changes only if the tiny model's bytes change (its SHA-256 is pinned in the inference tests)
 * or the import parameters do: either must be deliberate, since every model CID changes with it.
 */
const TINY_SEED0_CID = 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4'

const hasCode =
  (code: string, message?: RegExp) =>
  (err: LlmeshError): boolean => {
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
    if (message != null) assert.match(err.message, message)
    return true
  }

test('the tiny model imports with a pinned CIDv1 and exports byte-identical', async (t) => {
  const { store, dir } = await startStore(t)
  const file = join(dir, 'tiny.gguf')
  await writeTinyModel(file, { seed: 0 })
  const model = await store.add(file, { name: 'tiny' })
  assert.equal(model.cid, TINY_SEED0_CID)
  const cid = CID.parse(model.cid)
  assert.equal(cid.version, 1)
  assert.equal(cid.multihash.code, sha256Hasher.code)
  assert.equal(model.name, 'tiny')
  assert.equal(model.size, (await stat(file)).size)
  assert.equal(model.sha256, sha256(tinyModelBytes({ seed: 0 })))
  assert.equal(model.source, 'file')
  assert.equal(model.blocks, await countBlockFiles(store))
  assert.ok(model.blocks >= 3, `a ${model.size}-byte file should span several blocks, got ${model.blocks}`)

  assert.deepEqual(store.list(), [model])
  assert.equal(store.has(model.cid), true)
  assert.deepEqual(store.get(model.cid), model)

  const out = join(dir, 'out', 'tiny-copy.gguf')
  await assert.rejects(store.export(model.cid, out), (err: NodeJS.ErrnoException) => err.code === 'ENOENT')
  const out2 = join(dir, 'tiny-copy.gguf')
  const exported = await store.export(model.cid, out2)
  assert.equal(exported.sha256, model.sha256)
  assert.equal(await sha256OfFile(out2), model.sha256)
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file is left behind'
  )
})

test('the same bytes give the same CID in any store, from any path; adding twice keeps one entry', async (t) => {
  const a = await startStore(t)
  const b = await startStore(t)
  const bytes = paddedModel(3 * 1024 * 1024, 7)
  const first = await a.store.add(await writeTemp(a.dir, 'one.gguf', bytes))
  const second = await b.store.add(await writeTemp(b.dir, 'other-name.gguf', bytes), { name: 'another name' })
  assert.equal(second.cid, first.cid)
  assert.equal(second.blocks, first.blocks)
  const again = await a.store.add(await writeTemp(a.dir, 'copy.gguf', bytes), { name: 'renamed' })
  assert.deepEqual(again, first, 'a model added again comes back unchanged')
  assert.equal(a.store.list().length, 1)
  // one byte changed: another model
  const changed = bytes.slice()
  changed[changed.length - 1] = (changed[changed.length - 1] ?? 0) ^ 1
  const third = await b.store.add(await writeTemp(b.dir, 'changed.gguf', changed))
  assert.notEqual(third.cid, first.cid)
})

test('a v2 with bytes inserted near the start shares all but a few blocks with v1, and removing v1 keeps them', async (t) => {
  const { store, dir } = await startStore(t)
  const v1Bytes = paddedModel(8 * 1024 * 1024)
  // 200 bytes of new metadata right after the GGUF header: every later byte moves
  const v2Bytes = withInsertion(v1Bytes, 24, pseudoRandomBytes(200, 99))
  const v1 = await store.add(await writeTemp(dir, 'v1.gguf', v1Bytes))
  const afterV1 = await countBlockFiles(store)
  assert.equal(afterV1, v1.blocks)
  const v2 = await store.add(await writeTemp(dir, 'v2.gguf', v2Bytes))
  const newBlocks = (await countBlockFiles(store)) - afterV1
  const shared = v2.blocks - newBlocks
  t.diagnostic(`v1 ${v1.blocks} blocks, v2 ${v2.blocks} blocks, ${newBlocks} new, ${((100 * shared) / v2.blocks).toFixed(1)}% shared`)
  assert.ok(v1.blocks >= 8, `an 8 MiB file should give at least 8 blocks, got ${v1.blocks}`)
  // the changed leaf and the root (plus at most one leaf whose boundary moved)
  assert.ok(newBlocks >= 2 && newBlocks <= 3, `${newBlocks} new blocks`)
  assert.ok(shared / v2.blocks >= 0.75, `only ${shared} of ${v2.blocks} blocks shared`)

  const removed = await store.remove(v1.cid)
  assert.equal(removed.blocksKept, shared)
  assert.equal(removed.blocksDeleted, v1.blocks - shared)
  assert.equal(store.has(v1.cid), false)
  assert.equal(await countBlockFiles(store), v2.blocks)
  const out = join(dir, 'v2-out.gguf')
  assert.equal((await store.export(v2.cid, out)).sha256, sha256(v2Bytes))
  await assert.rejects(store.export(v1.cid, join(dir, 'v1-out.gguf')), hasCode('MODEL_NOT_STORED'))

  const last = await store.remove(v2.cid)
  assert.equal(last.blocksKept, 0)
  assert.equal(await countBlockFiles(store), 0)
  assert.deepEqual(store.list(), [])
})

test('a file that is not GGUF is refused and nothing is written', async (t) => {
  const { store, dir } = await startStore(t)
  const safetensors = pseudoRandomBytes(600_000, 3)
  await assert.rejects(store.add(await writeTemp(dir, 'model.safetensors', safetensors)), hasCode('MODEL_NOT_GGUF', /is not a GGUF model/))
  await assert.rejects(store.add(await writeTemp(dir, 'empty.gguf', new Uint8Array(0))), hasCode('MODEL_NOT_GGUF'))
  await assert.rejects(store.add(await writeTemp(dir, 'short.gguf', Uint8Array.of(0x47, 0x47))), hasCode('MODEL_NOT_GGUF'))
  assert.equal(await countBlockFiles(store), 0)
  assert.deepEqual(store.list(), [])
  await assert.rejects(stat(store.paths.index), (err: NodeJS.ErrnoException) => err.code === 'ENOENT')
})

test('a file over the size limit is refused before anything is written', async (t) => {
  const { store, dir } = await startStore(t, { maxModelBytes: 1024 * 1024 })
  const file = join(dir, 'tiny.gguf')
  await writeTinyModel(file, { seed: 0 })
  await assert.rejects(store.add(file), hasCode('MODEL_TOO_LARGE', /more than the limit of 1048576/))
  assert.equal(await countBlockFiles(store), 0)
  assert.deepEqual(store.list(), [])
})

test('missing files, unknown and malformed CIDs and bad names give typed errors', async (t) => {
  const { store, dir } = await startStore(t)
  await assert.rejects(store.add(join(dir, 'nope.gguf')), hasCode('MODEL_FILE_MISSING', /does not exist/))
  await assert.rejects(store.add(dir), hasCode('MODEL_FILE_MISSING', /not a regular file/))
  const unknown = TINY_SEED0_CID
  await assert.rejects(store.export(unknown, join(dir, 'x.gguf')), hasCode('MODEL_NOT_STORED', /is not in this node's model store/))
  await assert.rejects(store.path(unknown), hasCode('MODEL_NOT_STORED'))
  await assert.rejects(store.remove(unknown), hasCode('MODEL_NOT_STORED'))
  assert.equal(store.get(unknown), undefined)
  assert.equal(store.has(unknown), false)
  assert.throws(() => store.get('not-a-cid'), hasCode('INVALID_CID'))
  assert.throws(() => store.get('b'.repeat(10_000)), hasCode('INVALID_CID'))
  assert.equal(store.has('not-a-cid'), false)
  await assert.rejects(store.export('not-a-cid', join(dir, 'x.gguf')), hasCode('INVALID_CID'))
  const file = join(dir, 'tiny.gguf')
  await writeTinyModel(file, { seed: 0 })
  await assert.rejects(store.add(file, { name: 'n'.repeat(257) }), hasCode('INVALID_MODEL_NAME'))
  await assert.rejects(store.add(file, { name: 'two\nlines' }), hasCode('INVALID_MODEL_NAME'))
  await assert.rejects(store.add(file, { name: '   ' }), hasCode('INVALID_MODEL_NAME'))
  assert.equal(await countBlockFiles(store), 0)
  // a CIDv0 of the same root names the same model
  const model = await store.add(file)
  assert.equal(store.has(CID.parse(model.cid).toV0().toString()), true)
  assert.equal(parseModelCid(CID.parse(model.cid).toV0()).toString(), model.cid)
})

test('path() materialises a verified file for the engine; a damaged block is caught, never served', async (t) => {
  const { store, dir } = await startStore(t)
  const bytes = paddedModel(3 * 1024 * 1024, 5)
  const model = await store.add(await writeTemp(dir, 'm.gguf', bytes))
  const path = await store.path(model.cid)
  assert.ok(path.startsWith(store.paths.files))
  assert.equal(sha256(await readFile(path)), model.sha256)
  assert.equal(await store.path(model.cid), path, 'the second call reuses the file')

  // someone edits the cached file in place (same size): a verified path() writes it again
  const altered = bytes.slice()
  altered[10] = (altered[10] ?? 0) ^ 1
  await chmod(path, 0o644)
  await writeFile(path, altered)
  assert.notEqual(sha256(await readFile(path)), model.sha256)
  assert.equal(await store.path(model.cid, { verify: true }), path)
  assert.equal(sha256(await readFile(path)), model.sha256)

  // flip one byte of one leaf block on disk
  const blockFiles = (await readdir(store.paths.blocks, { recursive: true })).filter((f) => f.endsWith('.data'))
  const sizes = await Promise.all(blockFiles.map(async (f) => (await stat(join(store.paths.blocks, f))).size))
  const leaf = blockFiles[sizes.indexOf(Math.max(...sizes))] as string
  const damaged = await readFile(join(store.paths.blocks, leaf))
  damaged[100] = (damaged[100] ?? 0) ^ 0xff
  await writeFile(join(store.paths.blocks, leaf), damaged)
  const out = join(dir, 'out.gguf')
  await assert.rejects(store.export(model.cid, out), hasCode('MODEL_CORRUPT', /does not hash to its CID/))
  await assert.rejects(stat(out), (err: NodeJS.ErrnoException) => err.code === 'ENOENT')
  // the verified cached file is still good; without it, path() must not write a bad one
  assert.equal(await store.path(model.cid, { verify: true }), path)
  await rm(path)
  await assert.rejects(store.path(model.cid), hasCode('MODEL_CORRUPT'))
  await assert.rejects(stat(path), (err: NodeJS.ErrnoException) => err.code === 'ENOENT')
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.endsWith('.tmp')),
    []
  )
  // removing the damaged model still works
  await store.remove(model.cid)
  assert.equal(await countBlockFiles(store), 0)
  await assert.rejects(stat(path), (err: NodeJS.ErrnoException) => err.code === 'ENOENT')
})

test('the model list survives a restart; a damaged list is reported, not reset', async (t) => {
  const { store, dir } = await startStore(t)
  const model = await store.add(await writeTemp(dir, 'm.gguf', paddedModel(1024 * 1024, 2)), { name: 'kept' })
  await store.stop()
  await assert.rejects(store.export(model.cid, join(dir, 'x.gguf')), hasCode('MODEL_STORE_STOPPED'))
  const reopened = new ModelStore({ dir: store.paths.dir })
  await reopened.start()
  assert.deepEqual(reopened.list(), [model])
  assert.equal((await reopened.export(model.cid, join(dir, 'back.gguf'))).sha256, model.sha256)
  await reopened.stop()

  await writeFile(store.paths.index, '{"version":1,"models":[{"cid":')
  await assert.rejects(new ModelStore({ dir: store.paths.dir }).start(), hasCode('MODEL_INDEX_CORRUPT', /is corrupted/))
  assert.equal(await readFile(store.paths.index, 'utf8'), '{"version":1,"models":[{"cid":')
})

test('an import cancelled halfway removes the blocks it wrote and no others', async (t) => {
  const { store, dir } = await startStore(t)
  const v1Bytes = paddedModel(3 * 1024 * 1024)
  const v1 = await store.add(await writeTemp(dir, 'v1.gguf', v1Bytes))
  const v2File = await writeTemp(dir, 'v2.gguf', withInsertion(paddedModel(6 * 1024 * 1024), 24, Uint8Array.of(1, 2, 3)))
  const controller = new AbortController()
  await assert.rejects(
    store.add(v2File, {
      signal: controller.signal,
      onProgress: ({ bytesRead }) => {
        if (bytesRead >= 4 * 1024 * 1024) controller.abort()
      }
    }),
    (err: Error) => err.name === 'AbortError'
  )
  assert.equal(await countBlockFiles(store), v1.blocks)
  assert.deepEqual(store.list(), [v1])
  assert.equal((await store.export(v1.cid, join(dir, 'v1-out.gguf'))).sha256, sha256(v1Bytes))
})

test('gc deletes blocks and files no stored model uses', async (t) => {
  const { store, dir } = await startStore(t)
  const model = await store.add(await writeTemp(dir, 'm.gguf', paddedModel(1024 * 1024, 4)))
  await store.path(model.cid)
  // what a crash between writing blocks and listing a model leaves behind
  const orphan = pseudoRandomBytes(1000, 8)
  const blocks = new FsBlockstore(store.paths.blocks)
  await blocks.open()
  await blocks.put(CID.createV1(raw.code, await sha256Hasher.digest(orphan)), orphan)
  await writeFile(join(store.paths.files, 'stale.gguf.123.tmp'), 'x')
  assert.equal(await countBlockFiles(store), model.blocks + 1)
  assert.deepEqual(await store.gc(), { blocksDeleted: 1, filesDeleted: 1 })
  assert.equal(await countBlockFiles(store), model.blocks)
  assert.equal((await store.export(model.cid, join(dir, 'out.gguf'))).sha256, model.sha256)
  assert.deepEqual(await readdir(store.paths.files), [`${model.cid}.gguf`])
})
