import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import pino from 'pino'
import { genesisState } from '../../src/chain/index.ts'
import { deriveSealKeyPair, SignatureVerifier, signerFromPrivateKey } from '../../src/crypto/index.ts'
import { InferenceHost } from '../../src/inference/host.ts'
import { EchoEngine } from '../../src/inference/index.ts'
import { HostError, HostSessions } from '../../src/inference/infer-client.ts'
import { HostPayments, VoucherWallet } from '../../src/payments/index.ts'
import { startMeshLibp2p } from '../models/libp2p-fixture.ts'

const log = pino({ level: 'silent' })
const MODEL = 'bafkreiaxnnnb7qz2focittuqq3ya25q7rcv3bqynnczfzao5ykubfgvlfi'
const CHAIN = 'host-stop-test'

/**
 * A host on a bare libp2p node (echo engine) that charges for MODEL, and an edge that pays it the
 * way the node's edge does: a voucher with each job, then one after the answer (`pay`).
 */
async function paidHostAndEdge(t: TestContext, stopDrainMs: number) {
  const hostKey = await generateKeyPair('Ed25519')
  const edgeKey = await generateKeyPair('Ed25519')
  const hostNode = await startMeshLibp2p(t, hostKey)
  const edgeNode = await startMeshLibp2p(t, edgeKey)
  const host = signerFromPrivateKey(hostKey)
  const edge = signerFromPrivateKey(edgeKey)
  const verifier = new SignatureVerifier()
  const state = genesisState(
    {
      chainId: CHAIN,
      genesisTime: 0,
      params: { minValidatorStake: '1', baseFee: '10' },
      accounts: [{ address: edge.address, balance: '1000' }],
      validators: [{ address: host.address, stake: '1' }],
      models: [{ name: 'tiny', cid: MODEL, parameters: '1000' }],
      escrows: [{ payer: edge.address, amount: '100000000' }]
    },
    verifier
  )
  const payments = new HostPayments(
    { chain: { state, submitOwn: () => ({ ok: true }) }, verifier, log },
    { host: host.address, redeemIntervalMs: 60_000 }
  )
  const engine = new EchoEngine()
  await engine.start()
  await engine.load({ id: MODEL, path: '/echo/needs/no/file.gguf' })
  t.after(() => engine.stop())
  const inference = new InferenceHost(
    {
      libp2p: hostNode,
      log,
      engine,
      signer: host,
      sealKeys: await deriveSealKeyPair(hostKey.raw.subarray(0, 32)),
      now: Date.now,
      payments
    },
    { limits: { stopDrainMs } }
  )
  await inference.start()
  t.after(() => inference.stop())
  await edgeNode.dial(hostNode.getMultiaddrs())
  const sessions = new HostSessions({ libp2p: edgeNode, log, verifier, self: edge.address })
  t.after(() => sessions.closeAll())
  const wallet = new VoucherWallet(edge, CHAIN)
  let jobs = 0
  /** A paid job; `pay: false` leaves out the voucher after the answer. */
  const run = async (pay = true) => {
    const session = await sessions.get(host.address)
    const job = session.start(
      {
        job: `job-${jobs++}`,
        model: MODEL,
        prompt: 'pay me',
        maxTokens: 4,
        temperature: 0,
        seed: 0,
        topK: null,
        topP: null,
        stop: [],
        voucher: wallet.voucher(host.address)
      },
      () => {}
    )
    const outcome = await job.outcome
    wallet.charge(host.address, outcome.receipt.cost)
    if (pay) session.pay(outcome.id, wallet.voucher(host.address))
    return outcome
  }
  return { run, inference, payments, edge: edge.address, wallet, host: host.address }
}

describe('a host that stops', () => {
  it('waits for the voucher of the job it just answered, then closes', { timeout: 30_000 }, async (t) => {
    const { run, inference, payments, edge, wallet, host } = await paidHostAndEdge(t, 5_000)
    await run()
    const last = await run()
    assert.ok(last.receipt.cost > 0n)
    // the edge's `pay` for the last job is still on its way: the stop must wait for it
    const started = performance.now()
    await inference.stop()
    assert.equal(payments.awaitingPay(edge), false, 'the voucher for the last job arrived before the host closed')
    assert.equal(payments.owedBy(edge), wallet.owedTo(host))
    assert.ok(performance.now() - started < 4_000, 'it stopped once paid, not at the end of the drain time')
  })

  it('gives up on a voucher that does not come after stopDrainMs, and refuses new jobs meanwhile', { timeout: 30_000 }, async (t) => {
    const drainMs = 600
    const { run, inference, payments, edge } = await paidHostAndEdge(t, drainMs)
    await run(false)
    assert.equal(payments.awaitingPay(edge), true)
    const started = performance.now()
    const stopped = inference.stop()
    await assert.rejects(run(), (err: unknown) => err instanceof HostError && err.code === 'busy' && /stopping/.test(err.message))
    await stopped
    const took = performance.now() - started
    assert.ok(took >= drainMs - 50 && took < drainMs + 2_000, `stopped after ${Math.round(took)} ms, drain time ${drainMs} ms`)
    assert.equal(payments.awaitingPay(edge), true, 'the job stays billed and unpaid (redeemable once a later voucher covers it)')
  })
})
