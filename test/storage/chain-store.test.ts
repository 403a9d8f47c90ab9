import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { ClassicLevel } from 'classic-level'
import { buildBlock, encodeTx, signTx, stateRoot } from '../../src/chain/index.ts'
import { SignatureVerifier } from '../../src/crypto/index.ts'
import { ChainStore, DurableFile, jsonCodec, type StoreCorruptError } from '../../src/storage/index.ts'
import { makeCommit, makeSigners, makeState } from '../chain/fixtures.ts'
import { tempDir } from '../helpers.ts'

const verifier = new SignatureVerifier()
const signers = makeSigners(4)

test('committed blocks and the state survive a reopen', async (t) => {
  const dir = join(await tempDir(t), 'chain')
  const genesis = makeState(signers, 4, verifier)
  let store = await ChainStore.open(dir, genesis)
  let state = genesis
  let lastCommit = null
  for (let h = 1; h <= 5; h++) {
    const from = signers[h % 4] ?? assert.fail()
    const tx = encodeTx(
      signTx(
        {
          chainId: state.chainId,
          from: from.address,
          nonce: state.accounts.get(from.address)?.nonce ?? 0,
          fee: 1n,
          body: { type: 'transfer', to: signers[0]?.address ?? '', amount: 7n }
        },
        from
      )
    )
    const built = buildBlock(state, {
      proposer: state.validators[0]?.address ?? '',
      time: state.lastBlockTime + 1000,
      lastCommit,
      candidates: [tx],
      verifier
    })
    assert.equal(built.block.txs.length, 1)
    lastCommit = makeCommit(built.block, built.hash, 0, signers)
    store.commit(built.block, lastCommit, built.state)
    state = built.state
  }
  await store.close()
  store = await ChainStore.open(dir, genesis)
  t.after(() => store.close())
  assert.equal(store.latest().height, 5)
  assert.equal(stateRoot(store.latest()), stateRoot(state))
  const b3 = await store.readBlock(3)
  assert.equal(b3?.block.header.height, 3)
  assert.equal(b3?.commit.height, 3)
  assert.equal(await store.readBlock(6), undefined)
})

test('a store of another genesis or with a damaged snapshot is refused with a clear error', async (t) => {
  const dir = join(await tempDir(t), 'chain')
  const genesis = makeState(signers, 4, verifier)
  await (await ChainStore.open(dir, genesis)).close()
  await assert.rejects(
    ChainStore.open(dir, makeState(signers, 3, verifier)),
    (err: StoreCorruptError) => err.code === 'STORE_CORRUPT' && /another chain or genesis/.test(err.message)
  )
  // damage the snapshot behind the store's back
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  const raw = (await db.get('state')) ?? assert.fail()
  const damaged = raw.slice()
  damaged[damaged.length - 5] = (damaged[damaged.length - 5] ?? 0) ^ 0xff
  await db.put('state', damaged)
  await db.close()
  await assert.rejects(
    ChainStore.open(dir, genesis),
    (err: StoreCorruptError) => err.code === 'STORE_CORRUPT' && /is corrupted/.test(err.message)
  )
})

test('a durable file keeps the last write; a damaged one is reported, not reset', async (t) => {
  const path = join(await tempDir(t), 'guard.json')
  const parse = (v: unknown) => {
    const o = v as { height: number }
    if (typeof o?.height !== 'number') throw new Error('no height')
    return o
  }
  const file = new DurableFile(path, jsonCodec(parse))
  assert.equal(file.read(), undefined)
  file.write({ height: 1 })
  file.write({ height: 2 })
  assert.deepEqual(new DurableFile(path, jsonCodec(parse)).read(), { height: 2 })
  await writeFile(path, '{"height": ')
  assert.throws(
    () => file.read(),
    (err: StoreCorruptError) => err.code === 'STORE_CORRUPT' && err.message.includes(path)
  )
  assert.equal(await readFile(path, 'utf8'), '{"height": ')
})
