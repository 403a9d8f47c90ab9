import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildBlock, encodeTx, Mempool, signTx } from '../../src/chain/index.ts'
import { SignatureVerifier } from '../../src/crypto/index.ts'
import { makeSigners, makeState } from './fixtures.ts'

const verifier = new SignatureVerifier()
const signers = makeSigners(3)
const [a, b] = signers as [(typeof signers)[0], (typeof signers)[0]]

function transfer(nonce: number, amount = 1n): Uint8Array {
  return encodeTx(signTx({ chainId: 'llmesh-test', from: a.address, nonce, fee: 1n, body: { type: 'transfer', to: b.address, amount } }, a))
}

test('the mempool queues a sender in nonce order and refuses what could never apply, with the reason', () => {
  const state = makeState(signers, 1, verifier)
  const pool = new Mempool(state, { maxTxs: 100, maxBytes: 1 << 20 }, verifier)
  assert.equal(pool.add(transfer(0)).ok, true)
  assert.deepEqual(pool.add(transfer(0)), { ok: true, hash: pool.add(transfer(0)).hash, duplicate: true })
  const gap = pool.add(transfer(2))
  assert.equal(gap.ok ? 'ok' : gap.error.code, 'WRONG_NONCE')
  assert.equal(pool.add(transfer(1)).ok, true)
  assert.equal(pool.nextNonce(a.address), 2)
  const broke = pool.add(transfer(2, 10_000_000n))
  assert.equal(broke.ok ? 'ok' : broke.error.code, 'INSUFFICIENT_BALANCE')
  const garbage = pool.add(new Uint8Array([1, 2, 3]))
  assert.equal(garbage.ok ? 'ok' : garbage.error.code, 'DECODE_MALFORMED')
  assert.equal(pool.size, 2)
})

test('the mempool is bounded, and a commit removes what it included and what it made stale', () => {
  const state = makeState(signers, 1, verifier)
  const pool = new Mempool(state, { maxTxs: 2, maxBytes: 1 << 20 }, verifier)
  pool.add(transfer(0))
  pool.add(transfer(1))
  const full = pool.add(transfer(2))
  assert.equal(full.ok ? 'ok' : full.error.code, 'MEMPOOL_FULL')
  // a block that includes only nonce 0
  const built = buildBlock(state, {
    proposer: state.validators[0]?.address ?? '',
    time: state.lastBlockTime + 1,
    lastCommit: null,
    candidates: [transfer(0)],
    verifier
  })
  const dropped = pool.onCommit(built.block.txs, built.state)
  assert.deepEqual(dropped, [])
  assert.equal(pool.size, 1)
  assert.deepEqual([...pool.candidates()], [transfer(1)])
  // another node's block used nonce 1 differently: the waiting nonce-1 transfer is now stale
  const other = encodeTx(
    signTx({ chainId: 'llmesh-test', from: a.address, nonce: 1, fee: 2n, body: { type: 'transfer', to: b.address, amount: 5n } }, a)
  )
  const next = buildBlock(built.state, {
    proposer: state.validators[0]?.address ?? '',
    time: built.state.lastBlockTime + 1,
    lastCommit: null,
    candidates: [other],
    verifier
  })
  const stale = pool.onCommit(next.block.txs, next.state)
  assert.equal(stale.length, 1)
  assert.equal(stale[0]?.error.code, 'WRONG_NONCE')
  assert.equal(pool.size, 0)
})
