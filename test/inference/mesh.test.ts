import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import type { Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { openSealedSession, type SealedChannel } from '../../src/crypto/index.ts'
import { createApiServer, listenApi } from '../../src/gateway/index.ts'
import { joinFrames } from '../../src/inference/frame-stream.ts'
import { EchoEngine, encodeFrame, normalizeGenerateRequest, tinyModelBytes, verifyReceipt } from '../../src/inference/index.ts'
import { BOX_AAD, type Frame } from '../../src/inference/protocol.ts'
import type { LlmeshNode } from '../../src/node/index.ts'
import { HOST_LIMITS, INFER_PROTOCOL } from '../../src/params/index.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { addressOf, peerIdOf, startNodeOn } from '../node-fixture.ts'
import { meshHome, startMeshNode } from './mesh-fixture.ts'

async function counter(node: LlmeshNode, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await node.metrics.registry.getSingleMetric(name)?.get()
  return metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0
}

/** An edge that has heard the adverts of `hosts` (all serving `cid`). */
async function edgeFor(t: TestContext, hosts: LlmeshNode[], cid: string): Promise<LlmeshNode> {
  const { node: edge } = await startMeshNode(t, { roles: ['edge'], p2p: { bootstrap: hosts.map(addressOf) } })
  await edge.joinMesh()
  for (const h of hosts) await h.libp2p.dial(edge.libp2p.peerId)
  const mesh = edge.mesh
  assert.ok(mesh)
  await waitFor(
    `the adverts of ${hosts.length} host(s)`,
    async () => ((mesh.models().find((m) => m.cid === cid)?.hosts.length ?? 0) >= hosts.length ? true : undefined),
    20_000
  )
  return edge
}

const request = (model: string, prompt: string, maxTokens = 64) => normalizeGenerateRequest({ model, prompt, maxTokens })

describe('inference over the mesh (in process, echo engine)', () => {
  it('an edge runs a job on a host it heard advertise, with a receipt that verifies', async (t) => {
    const { node: host, cid } = await startMeshNode(t, { roles: ['host'] })
    const edge = await edgeFor(t, [host], cid)
    const pieces: string[] = []
    const g = await edge.mesh?.generate(request(cid, 'hello mesh', 8), { onToken: (p) => pieces.push(p) })
    assert.ok(g)
    assert.equal(g.host, peerIdOf(host))
    assert.equal(g.text, 'hello me')
    assert.equal(pieces.join(''), g.text)
    const receipt = verifyReceipt(g.receiptBytes)
    assert.equal(receipt.host, peerIdOf(host))
    assert.equal(receipt.client, peerIdOf(edge))
    assert.equal(receipt.model, cid)
    assert.equal(receipt.completionTokens, 8)
    // a receipt with one bit changed does not verify
    const forged = g.receiptBytes.slice()
    forged[forged.length - 1] = (forged[forged.length - 1] ?? 0) ^ 1
    assert.throws(() => verifyReceipt(forged), /not signed|not a receipt/)
    // many jobs share one long-lived session
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => edge.mesh?.generate(request(cid, `job ${i}`))))
    assert.deepEqual(
      many.map((m) => m?.text),
      many.map((_, i) => `job ${i}`)
    )
    const known = edge.mesh?.hosts() ?? []
    assert.equal(known.length, 1)
    assert.equal(known[0]?.peerId, peerIdOf(host))
    assert.deepEqual(known[0]?.models, [cid])
    assert.ok((known[0]?.routing?.samples ?? 0) >= 1, 'the router measured the host')
    const streams = edge.libp2p.getConnections(host.libp2p.peerId).flatMap((c) => c.streams.filter((s) => s.protocol === INFER_PROTOCOL))
    assert.equal(streams.length, 1, 'one session stream for every job')
  })

  it('the bytes crossing the mesh carry neither the prompt nor the answer', async (t) => {
    const { node: host, cid } = await startMeshNode(t, { roles: ['host'] })
    const edge = await edgeFor(t, [host], cid)
    // tap the edge's inference streams: every byte it sends and receives above noise
    const seen: Buffer[] = []
    const dial = edge.libp2p.dialProtocol.bind(edge.libp2p)
    edge.libp2p.dialProtocol = (async (...args: Parameters<typeof dial>) => {
      const stream = (await dial(...args)) as Stream
      const send = stream.send.bind(stream)
      stream.send = (data) => {
        seen.push(Buffer.from(data.subarray()))
        return send(data)
      }
      // wrap the reader's listener (a listener of our own would take the data buffered before it)
      const listen = stream.addEventListener.bind(stream) as (type: string, listener: unknown, options?: unknown) => void
      ;(stream as unknown as { addEventListener: typeof listen }).addEventListener = (type, listener, options) => {
        if (type !== 'message' || typeof listener !== 'function') return listen(type, listener, options)
        return listen(
          type,
          (evt: { data: { subarray(): Uint8Array } }) => {
            seen.push(Buffer.from(evt.data.subarray()))
            listener(evt)
          },
          options
        )
      }
      return stream
    }) as typeof dial
    const secret = 'the launch code is 7-TANGO-ZULU'
    const g = await edge.mesh?.generate(request(cid, secret, 200))
    assert.equal(g?.text, secret, 'the echo engine answers with the prompt')
    const wire = Buffer.concat(seen)
    assert.ok(wire.length > 2 * secret.length, `the tap saw the exchange (${wire.length} bytes)`)
    // the tap sees plaintext where there is some: the host's model list in its first frame
    assert.ok(wire.includes(Buffer.from(cid)), 'the tap sees the unsealed frame metadata')
    for (const piece of [secret, 'TANGO', 'launch code'])
      assert.equal(wire.includes(Buffer.from(piece)), false, `"${piece}" crossed in clear`)
  })

  it('fails over to another host when the preferred one is gone before its first token', async (t) => {
    const { node: a, cid } = await startMeshNode(t, { roles: ['host'] })
    const edge = await edgeFor(t, [a], cid)
    // a few jobs on A: the router measures it, so A is preferred over an unmeasured host
    for (let i = 0; i < 3; i++) assert.equal((await edge.mesh?.generate(request(cid, 'warm up')))?.host, peerIdOf(a))
    const { node: b } = await startMeshNode(t, { roles: ['host'], p2p: { bootstrap: [addressOf(edge)] } })
    await b.joinMesh()
    await waitFor('B advertised', async () => ((edge.mesh?.models()[0]?.hosts.length ?? 0) >= 2 ? true : undefined), 20_000)
    await a.stop() // A's advert is still live at the edge
    const g = await edge.mesh?.generate(request(cid, 'after the fall'))
    assert.equal(g?.host, peerIdOf(b))
    assert.deepEqual(g?.failedHosts, [peerIdOf(a)])
    assert.equal(g?.text, 'after the fall')
  })

  it('a host that refuses (busy) is skipped; when every host refuses the edge says so', async (t) => {
    const { node: host, cid } = await startMeshNode(t, { roles: ['host'], host: { maxJobsPerPeer: 0 } })
    const edge = await edgeFor(t, [host], cid)
    await assert.rejects(edge.mesh?.generate(request(cid, 'x')) ?? Promise.resolve(), { code: 'ALL_HOSTS_BUSY' })
    assert.equal(await counter(host, 'llmesh_host_jobs_total', { outcome: 'busy' }), 1)
  })

  it('a peer sending malformed or oversized frames is cut off and counted', async (t) => {
    const { node: host, cid } = await startMeshNode(t, { roles: ['host'] })
    const edge = await edgeFor(t, [host], cid)
    const hostId = peerIdFromString(peerIdOf(host))
    type Raw = ReturnType<typeof lpStream<Stream>>
    let hostKey: Uint8Array = new Uint8Array()
    const rawSession = async (): Promise<Raw> => {
      const lp = lpStream(await edge.libp2p.dialProtocol(hostId, INFER_PROTOCOL), { maxDataLength: 2 * HOST_LIMITS.maxFrameBytes })
      const info = dagCbor.decode<{ t: string; models: string[]; key: Uint8Array }>((await lp.read()).subarray())
      assert.equal(info.t, 'info')
      assert.deepEqual(info.models, [cid])
      hostKey = info.key
      return lp
    }
    /** A session opened as an edge opens it (a real HPKE hello): its channel seals boxes the host can open. */
    const sealedSession = async (): Promise<{ lp: Raw; channel: SealedChannel }> => {
      const lp = await rawSession()
      const { enc, channel } = await openSealedSession(hostKey, peerIdOf(edge), peerIdOf(host))
      await lp.write(encodeFrame({ t: 'hello', enc }))
      return { lp, channel }
    }
    const box = (channel: SealedChannel, ...frames: Frame[]): Uint8Array =>
      encodeFrame({ t: 'box', body: channel.seal(joinFrames(frames.map(encodeFrame)), BOX_AAD) })
    const cutOff = async (lp: Raw): Promise<void> => {
      await assert.rejects(lp.read({ signal: AbortSignal.timeout(10_000) }))
    }
    let lp = await rawSession()
    await lp.write(new TextEncoder().encode('not cbor at all'))
    await cutOff(lp) // malformed 1
    lp = await rawSession()
    await lp.write(encodeFrame({ t: 'tok', id: 1, body: new Uint8Array(4) }))
    await cutOff(lp) // malformed 2: not a hello
    lp = await rawSession()
    await lp.write(new Uint8Array(HOST_LIMITS.maxFrameBytes + 1))
    await cutOff(lp) // too_large
    lp = await rawSession()
    await lp.write(encodeFrame({ t: 'hello', enc: new Uint8Array(32) }))
    await cutOff(lp) // bad_seal 1: no session opens on that key
    let sealed = await sealedSession()
    await sealed.lp.write(encodeFrame({ t: 'req', id: 1, body: new Uint8Array(64) }))
    await cutOff(sealed.lp) // malformed 3: a frame in the clear after the hello
    sealed = await sealedSession()
    await sealed.lp.write(encodeFrame({ t: 'box', body: new Uint8Array(64) }))
    await cutOff(sealed.lp) // bad_seal 2: a box not sealed to the host
    sealed = await sealedSession()
    await sealed.lp.write(box(sealed.channel, { t: 'tok', id: 1, body: new Uint8Array(4) }))
    await cutOff(sealed.lp) // malformed 4: a host's frame from an edge
    sealed = await sealedSession()
    await sealed.lp.write(box(sealed.channel, { t: 'cancel', id: 7 }))
    await sealed.lp.write(box(sealed.channel, { t: 'cancel', id: 7 }))
    // still open: a box of frames of its direction is accepted (cancelling a job that is not there does nothing)
    await assert.rejects(sealed.lp.read({ signal: AbortSignal.timeout(300) }), /abort/i)
    await sealed.lp.unwrap().close()
    await waitFor(
      'the rejections counted',
      async () =>
        (await counter(host, 'llmesh_p2p_rejected_messages_total', { protocol: INFER_PROTOCOL, reason: 'malformed' })) >= 4
          ? true
          : undefined,
      5_000
    )
    assert.equal(await counter(host, 'llmesh_p2p_rejected_messages_total', { protocol: INFER_PROTOCOL, reason: 'malformed' }), 4)
    assert.equal(await counter(host, 'llmesh_p2p_rejected_messages_total', { protocol: INFER_PROTOCOL, reason: 'bad_seal' }), 2)
    assert.equal(await counter(host, 'llmesh_p2p_rejected_messages_total', { protocol: INFER_PROTOCOL, reason: 'too_large' }), 1)
    // and the host goes on serving honest edges
    assert.equal((await edge.mesh?.generate(request(cid, 'still here')))?.text, 'still here')
  })

  it('a client that disconnects mid-stream cancels the job on the host', async (t) => {
    // a slow echo engine: 50 ms per token
    const { node: host, cid } = await startMeshNode(t, { roles: ['host'] }, new EchoEngine({ tokenIntervalMs: 50 }))
    const edge = await edgeFor(t, [host], cid)
    const app = createApiServer(edge)
    t.after(() => app.close())
    const url = await listenApi(app, '127.0.0.1', 0, 'test')
    const controller = new AbortController()
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: cid, prompt: 'x'.repeat(1000), max_tokens: 1000, stream: true }),
      signal: controller.signal
    })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('x-llmesh-host'), peerIdOf(host))
    const reader = res.body?.getReader()
    await reader?.read()
    controller.abort()
    await waitFor(
      'the job cancelled on the host',
      async () => ((await counter(host, 'llmesh_host_jobs_total', { outcome: 'cancelled' })) >= 1 ? true : undefined),
      10_000
    )
    assert.equal(await counter(host, 'llmesh_host_jobs_total', { outcome: 'done' }), 0)
  })
})

describe('a host on llama.cpp', () => {
  it('serves the tiny model though a configured malformed GGUF fails to load', { timeout: 120_000 }, async (t) => {
    const dir = await tempDir(t)
    const truncated = join(dir, 'truncated.gguf')
    const good = tinyModelBytes({ seed: 1 })
    await writeFile(truncated, good.subarray(0, good.length >> 1))
    const { node: host, cid, extraCids } = await startMeshNode(t, { roles: ['host'] }, 'llama', [truncated])
    assert.equal(extraCids.length, 1)
    assert.deepEqual(host.status().serving, [cid], 'the broken model is not served; the node is up')
    const edge = await edgeFor(t, [host], cid)
    const a = await edge.mesh?.generate(request(cid, 'The mesh', 16))
    const b = await edge.mesh?.generate(request(cid, 'The mesh', 16))
    assert.equal(a?.result.completionTokens, 16)
    assert.equal(a?.text, b?.text, 'greedy decoding is reproducible')
    await assert.rejects(edge.mesh?.generate(request(extraCids[0] ?? '', 'x')) ?? Promise.resolve(), { code: 'NO_HOST' })
  })
})

describe('a silent host', () => {
  it('is given up after edge.firstTokenTimeoutMs, its job cancelled, and the next host serves', { timeout: 120_000 }, async (t) => {
    const { node: slow, cid } = await startMeshNode(t, { roles: ['host'] }, new EchoEngine({ tokenIntervalMs: 5_000 }))
    const { node: edge } = await startMeshNode(t, {
      roles: ['edge'],
      edge: { firstTokenTimeoutMs: 500 },
      p2p: { bootstrap: [addressOf(slow)] }
    })
    await edge.joinMesh()
    await waitFor('the slow host advert', async () => (edge.mesh?.models().some((m) => m.cid === cid) ? true : undefined), 20_000)
    const started = Date.now()
    await assert.rejects(edge.mesh?.generate(request(cid, 'anyone there?')) ?? Promise.resolve(), (err: Error & { code: string }) => {
      assert.equal(err.code, 'ALL_HOSTS_FAILED')
      assert.match(err.message, /sent no token within 500 ms/)
      return true
    })
    assert.ok(Date.now() - started < 4_000, 'the edge did not wait for the slow host')
    await waitFor(
      'the job cancelled on the slow host',
      async () => ((await counter(slow, 'llmesh_host_jobs_total', { outcome: 'cancelled' })) >= 1 ? true : undefined),
      10_000
    )
    const { node: fast } = await startMeshNode(t, { roles: ['host'], p2p: { bootstrap: [addressOf(edge)] } })
    await fast.joinMesh()
    await waitFor('the fast host advert', async () => ((edge.mesh?.models()[0]?.hosts.length ?? 0) >= 2 ? true : undefined), 20_000)
    const g = await edge.mesh?.generate(request(cid, 'hello'))
    assert.equal(g?.host, peerIdOf(fast))
    assert.equal(g?.text, 'hello')
  })
})

describe('an edge that runs the chain', () => {
  it('routes only to hosts with the minimum host stake', { timeout: 120_000 }, async (t) => {
    const e = await meshHome(t, { roles: ['edge', 'validator'] })
    const a = await meshHome(t, { roles: ['host'] })
    const b = await meshHome(t, { roles: ['host'] })
    const id = (h: { home: { privateKey: Parameters<typeof peerIdFromPrivateKey>[0] } }) =>
      peerIdFromPrivateKey(h.home.privateKey).toString()
    const genesisPath = join(await tempDir(t), 'genesis.json')
    await writeFile(
      genesisPath,
      JSON.stringify({
        chainId: 'stake-test',
        genesisTime: Date.now(),
        params: { blockTimeMs: 500 },
        accounts: [e, a, b].map((h) => ({ address: id(h), balance: '1000000000' })),
        validators: [{ address: id(e), stake: '10000000' }],
        hosts: [{ address: id(a), stake: '100000' }] // b has no host stake
      })
    )
    for (const h of [e, a, b]) h.home.config.chain = { genesis: genesisPath }
    const edge = await startNodeOn(t, e.home)
    const hostA = await startNodeOn(t, a.home)
    const hostB = await startNodeOn(t, b.home)
    for (const h of [hostA, hostB]) await h.libp2p.dial(multiaddr(addressOf(edge)))
    await waitFor('both adverts', async () => ((edge.mesh?.models()[0]?.hosts.length ?? 0) >= 2 ? true : undefined), 20_000)
    for (let i = 0; i < 6; i++) {
      const g = await edge.mesh?.generate(request(e.cid, `job ${i}`)).catch((err) => {
        throw new Error(`job ${i}: ${(err as Error).message}`)
      })
      assert.equal(g?.host, peerIdOf(hostA))
    }
    // without a staked host (once A's advert expired) the edge says why
    await hostA.stop()
    const refusal = await waitFor(
      "A's advert gone",
      async () => {
        const err = await edge.mesh?.generate(request(e.cid, 'anyone?')).then(
          () => undefined,
          (x: Error & { code: string }) => x
        )
        return err?.code === 'NO_HOST' ? err : undefined
      },
      30_000,
      1_000
    )
    assert.match(refusal.message, /none has the minimum host stake/)
  })
})
