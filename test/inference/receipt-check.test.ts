import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import pino from 'pino'
import { deriveSealKeyPair, SignatureVerifier, type Signer, signerFromPrivateKey } from '../../src/crypto/index.ts'
import { InferenceHost } from '../../src/inference/host.ts'
import { EchoEngine, verifyReceipt } from '../../src/inference/index.ts'
import { HostError, HostSessions } from '../../src/inference/infer-client.ts'
import type { MeshLibp2p } from '../../src/p2p/index.ts'
import { startMeshLibp2p } from '../models/libp2p-fixture.ts'

const log = pino({ level: 'silent' })
const MODEL = 'bafkreiaxnnnb7qz2focittuqq3ya25q7rcv3bqynnczfzao5ykubfgvlfi'

async function libp2pNode(t: TestContext): Promise<{ node: MeshLibp2p; signer: Signer; seed: Uint8Array }> {
  const privateKey = await generateKeyPair('Ed25519')
  const node = await startMeshLibp2p(t, privateKey)
  return { node, signer: signerFromPrivateKey(privateKey), seed: privateKey.raw.subarray(0, 32) }
}

/** A signer that signs with `own` until `goodSignatures` are spent, then signs with another key. */
function turning(own: Signer, goodSignatures: number, other: Signer): Signer & { count: number } {
  const s = {
    address: own.address,
    count: 0,
    sign: (message: Uint8Array) => (s.count++ < goodSignatures ? own : other).sign(message)
  }
  return s
}

/**
 * A host on a bare libp2p node (echo engine) whose signatures turn bad after `goodSignatures`
 * (its first signature binds its sealing key, so a session opens), and the edge's sessions to it
 * with a clock the test moves.
 */
async function hostAndEdge(t: TestContext, goodSignatures: number, receiptCheckIntervalMs: number) {
  const host = await libp2pNode(t)
  const edge = await libp2pNode(t)
  const stranger = await libp2pNode(t)
  const engine = new EchoEngine()
  await engine.start()
  await engine.load({ id: MODEL, path: '/echo/needs/no/file.gguf' })
  t.after(() => engine.stop())
  const signer = turning(host.signer, goodSignatures, stranger.signer)
  const inference = new InferenceHost({
    libp2p: host.node,
    log,
    engine,
    signer,
    sealKeys: await deriveSealKeyPair(host.seed),
    now: Date.now
  })
  await inference.start()
  t.after(() => inference.stop())
  await edge.node.dial(host.node.getMultiaddrs())
  const clock = { ms: 0 }
  const sessions = new HostSessions({
    libp2p: edge.node,
    log,
    verifier: new SignatureVerifier(),
    self: edge.signer.address,
    receiptCheckIntervalMs,
    now: () => clock.ms
  })
  t.after(() => sessions.closeAll())
  let jobs = 0
  const run = async () => {
    const session = await sessions.get(host.signer.address)
    const job = session.start(
      { job: `job-${jobs++}`, model: MODEL, prompt: 'receipts', maxTokens: 4, temperature: 0, seed: 0, topK: null, topP: null, stop: [] },
      () => {}
    )
    return { session, outcome: await job.outcome }
  }
  return { run, clock, signer, host: host.signer.address }
}

describe('receipt checks at the edge', () => {
  it('checks the first receipt of a session: a host that signs falsely is refused (bad_host) and its session closed', async (t) => {
    const { run } = await hostAndEdge(t, 1, 60_000)
    await assert.rejects(
      run(),
      (err: unknown) => err instanceof HostError && err.code === 'bad_host' && /does not verify/.test(err.message)
    )
    // the next job opens a new session, whose first receipt is checked again
    await assert.rejects(run(), (err: unknown) => err instanceof HostError && err.code === 'bad_host')
  })

  it('then checks one receipt per interval: a host that turns to false signatures is caught at the next check', async (t) => {
    const { run, clock, signer } = await hostAndEdge(t, 3, 1_000)
    // the binding and two good receipts; the first is checked
    const first = await run()
    assert.equal(verifyReceipt(first.outcome.receiptBytes).job, 'job-0')
    clock.ms = 500
    await run()
    // within the interval a receipt's signature is not checked (its fields are): this one is false
    clock.ms = 900
    const unchecked = await run()
    assert.equal(signer.count, 4)
    assert.throws(() => verifyReceipt(unchecked.outcome.receiptBytes), /not signed/)
    // at the interval the next receipt is checked: refused, and the session is dropped
    clock.ms = 1_000
    await assert.rejects(run(), (err: unknown) => err instanceof HostError && err.code === 'bad_host')
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(first.session.closed, true)
  })

  it('with an interval of 0 every receipt is checked', async (t) => {
    const { run } = await hostAndEdge(t, 3, 0)
    await run()
    await run()
    await assert.rejects(run(), (err: unknown) => err instanceof HostError && err.code === 'bad_host')
  })
})
