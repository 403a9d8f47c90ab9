import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { encodeTx, Mempool, signTx, TxCache, txHash } from '../../src/chain/index.ts'
import { SignatureVerifier } from '../../src/crypto/index.ts'
import { MAX_SUBMIT_TXS, registerChainRoutes } from '../../src/gateway/chain-routes.ts'
import type { LlmeshNode } from '../../src/node/index.ts'
import { LIMITS } from '../../src/params/index.ts'
import { CHAIN_ID, makeSigners, makeState } from '../chain/fixtures.ts'

const [a, b] = makeSigners(2) as [ReturnType<typeof makeSigners>[0], ReturnType<typeof makeSigners>[0]]
const verifier = new SignatureVerifier()
const state = makeState([a, b], 1, verifier)

const transfer = (nonce: number, amount = 1n): Uint8Array =>
  encodeTx(signTx({ chainId: CHAIN_ID, from: a.address, nonce, fee: 1n, body: { type: 'transfer', to: b.address, amount } }, a))
const b64 = (raw: Uint8Array): string => Buffer.from(raw).toString('base64')

/** The chain routes over a real mempool (a stand-in for the node's chain service). */
function server() {
  const mempool = new Mempool(state, { maxTxs: 10_000, maxBytes: 64 * 1024 * 1024 }, verifier, new TxCache(10_000))
  const chain = { submit: (raw: Uint8Array) => mempool.add(raw) }
  const app = Fastify({ bodyLimit: LIMITS.maxHttpBodyBytes })
  registerChainRoutes(app, { chain } as unknown as LlmeshNode)
  return { app, mempool }
}

test('POST /mesh/txs takes many transactions in order and answers for each', async (t) => {
  const { app, mempool } = server()
  t.after(() => app.close())
  const good = [0, 1, 2].map((n) => transfer(n))
  const txs = [...good.map(b64), b64(transfer(7)), b64(good[0] as Uint8Array), b64(new Uint8Array([1, 2, 3]))]
  const res = await app.inject({ method: 'POST', url: '/mesh/txs', payload: { txs } })
  assert.equal(res.statusCode, 200)
  const body = res.json()
  assert.equal(body.accepted, 4)
  assert.equal(body.rejected, 2)
  assert.deepEqual(
    body.results.slice(0, 3),
    good.map((raw) => ({ hash: txHash(raw), status: 'pending' }))
  )
  assert.equal(body.results[3].status, 'rejected')
  assert.equal(body.results[3].code, 'WRONG_NONCE')
  // the same transaction again is harmless
  assert.deepEqual(body.results[4], { hash: txHash(good[0] as Uint8Array), status: 'pending' })
  assert.equal(body.results[5].status, 'rejected')
  assert.equal(body.results[5].code, 'DECODE_MALFORMED')
  assert.equal(body.results[5].hash, null)
  assert.equal(mempool.size, 3)
})

test('POST /mesh/txs refuses a malformed or oversized body whole, and changes nothing', async (t) => {
  const { app, mempool } = server()
  t.after(() => app.close())
  const one = b64(transfer(0))
  const bad: unknown[] = [
    {},
    { txs: [] },
    { txs: one },
    { txs: [one, 5] },
    { txs: [one, 'not base64!'] },
    { txs: [one], extra: 1 },
    { txs: Array.from({ length: MAX_SUBMIT_TXS + 1 }, () => 'AAAA') },
    [one]
  ]
  for (const payload of bad) {
    const res = await app.inject({ method: 'POST', url: '/mesh/txs', payload: payload as object })
    assert.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 80))
    assert.equal(res.json().error.code, 'invalid_body')
  }
  const huge = await app.inject({ method: 'POST', url: '/mesh/txs', payload: { txs: ['A'.repeat(LIMITS.maxHttpBodyBytes)] } })
  assert.equal(huge.statusCode, 413)
  assert.equal(mempool.size, 0)
})
