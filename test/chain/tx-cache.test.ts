import assert from 'node:assert/strict'
import { test } from 'node:test'
import { applyBlock, buildBlock, decodeTxBatch, encodeTx, encodeTxBatch, signTx, TxCache, txHash } from '../../src/chain/index.ts'
import { encodeCanonical } from '../../src/codec/index.ts'
import { SignatureVerifier } from '../../src/crypto/index.ts'
import { CHAIN_ID, makeSigners, makeState } from './fixtures.ts'

const verifier = new SignatureVerifier()
const [a, b] = makeSigners(2) as [ReturnType<typeof makeSigners>[0], ReturnType<typeof makeSigners>[0]]

function transfer(nonce: number): Uint8Array {
  return encodeTx(signTx({ chainId: CHAIN_ID, from: a.address, nonce, fee: 1n, body: { type: 'transfer', to: b.address, amount: 1n } }, a))
}

/** A verifier that counts the signatures it checks. */
function countingVerifier(): { verifier: SignatureVerifier; count: () => number } {
  const inner = new SignatureVerifier()
  let n = 0
  const v = Object.create(inner) as SignatureVerifier
  v.verify = (address, message, sig) => {
    n++
    return inner.verify(address, message, sig)
  }
  return { verifier: v, count: () => n }
}

test('the transaction cache decodes once, checks the size every time, and freezes what it hands out', () => {
  const cache = new TxCache(2)
  const raw = transfer(0)
  const first = cache.decode(raw, 4096)
  assert.equal(first.hash, txHash(raw))
  assert.equal(cache.decode(raw, 4096).tx, first.tx)
  assert.throws(() => cache.decode(raw, raw.byteLength - 1), { code: 'DECODE_TOO_LARGE' })
  assert.ok(Object.isFrozen(first.tx) && Object.isFrozen(first.tx.body))
  assert.throws(() => {
    ;(first.tx as { nonce: number }).nonce = 5
  })
  // bounded: the oldest entry is forgotten
  cache.decode(transfer(1), 4096)
  cache.decode(transfer(2), 4096)
  assert.equal(cache.size, 2)
  assert.notEqual(cache.decode(raw, 4096).tx, first.tx)
})

test('a signature is verified once per node: mempool admission, block check and re-check share the result', () => {
  const state = makeState(makeSigners(2), 1, verifier)
  const { verifier: counted, count } = countingVerifier()
  const cache = new TxCache(100)
  const raws = [transfer(0), transfer(1), transfer(2)]
  const built = buildBlock(state, {
    proposer: state.validators[0]?.address ?? '',
    time: state.lastBlockTime + 1,
    lastCommit: null,
    candidates: raws,
    verifier: counted,
    txCache: cache
  })
  assert.equal(count(), 3)
  applyBlock(state, built.block, { verifier: counted, txCache: cache })
  assert.equal(count(), 3, 'the block check reused the signature results')
  // a transaction object the cache did not decode is always checked
  const tampered = { ...cache.decode(raws[0] as Uint8Array, 4096).tx, nonce: 9 }
  assert.equal(cache.signatureValid(tampered, counted), false)
  assert.equal(count(), 4)
  // a bad signature is remembered as bad, and the block carrying it is refused with the reason
  const bad = encodeCanonical({ ...cache.decode(raws[0] as Uint8Array, 4096).tx, sig: new Uint8Array(64) })
  const input = { proposer: built.block.header.proposer, time: state.lastBlockTime + 1, lastCommit: null, verifier, txCache: cache }
  assert.equal(buildBlock(state, { ...input, candidates: [bad] }).rejected[0]?.error.code, 'BAD_SIGNATURE')
  assert.equal(buildBlock(state, { ...input, candidates: [bad] }).rejected[0]?.error.code, 'BAD_SIGNATURE')
})

test('transaction batches are bounded lists of byte strings', () => {
  const limits = { maxTxs: 2, maxBytes: 1024 }
  const txs = [transfer(0), transfer(1)]
  assert.deepEqual(
    decodeTxBatch(encodeTxBatch(txs), limits).map((t) => txHash(t)),
    txs.map((t) => txHash(t))
  )
  assert.throws(() => decodeTxBatch(encodeTxBatch([]), limits), { code: 'DECODE_MALFORMED' })
  assert.throws(() => decodeTxBatch(encodeTxBatch([...txs, transfer(2)]), limits), { code: 'DECODE_MALFORMED' })
  assert.throws(() => decodeTxBatch(encodeCanonical([1, 2]), limits), { code: 'DECODE_MALFORMED' })
  assert.throws(() => decodeTxBatch(encodeCanonical({ txs }), limits), { code: 'DECODE_MALFORMED' })
  assert.throws(() => decodeTxBatch(encodeTxBatch(txs), { maxTxs: 2, maxBytes: 100 }), { code: 'DECODE_TOO_LARGE' })
})
