import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createApiServer } from '../../src/gateway/index.ts'
import { LIMITS, VERSION } from '../../src/params/index.ts'
import { waitFor } from '../helpers.ts'
import { addressOf, peerIdOf, startTestNode } from '../node-fixture.ts'

async function randomCid(): Promise<CID> {
  return CID.create(1, raw.code, await sha256.digest(crypto.getRandomValues(new Uint8Array(32))))
}

test('GET /mesh/status has the documented fields and lists the connected peer', async (t) => {
  const a = await startTestNode(t, { roles: ['edge', 'validator'] })
  const b = await startTestNode(t, { p2p: { bootstrap: [addressOf(a)] } })
  await b.joinMesh()
  const app = createApiServer(a)
  t.after(() => app.close())
  // b's dial resolves when b is connected; a registers the inbound connection a moment later
  const s = await waitFor(
    'a to list b',
    async () => {
      const res = await app.inject({ method: 'GET', url: '/mesh/status' })
      assert.equal(res.statusCode, 200)
      const body = res.json()
      return body.peers.length > 0 ? body : undefined
    },
    5_000,
    50
  )
  assert.equal(s.peerId, peerIdOf(a))
  assert.equal(s.version, VERSION)
  assert.deepEqual(s.roles, ['edge', 'validator'])
  assert.ok(s.addresses.some((x: string) => x.startsWith('/ip4/127.0.0.1/tcp/')))
  assert.deepEqual(s.peers, [peerIdOf(b)])
  assert.equal(typeof s.uptimeSeconds, 'number')
})

test('GET /metrics is Prometheus text with connection, stream, gossip and HTTP metrics', async (t) => {
  const a = await startTestNode(t)
  const app = createApiServer(a)
  t.after(() => app.close())
  await app.inject({ method: 'GET', url: '/mesh/status' })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  assert.equal(res.statusCode, 200)
  assert.match(res.headers['content-type'] as string, /text\/plain/)
  for (const name of [
    'llmesh_p2p_connections',
    'llmesh_p2p_streams',
    'llmesh_gossip_messages_received_total',
    'llmesh_gossip_messages_published_total',
    'llmesh_p2p_rejected_messages_total',
    'llmesh_http_requests_total'
  ]) {
    assert.match(res.body, new RegExp(`^# TYPE ${name} `, 'm'), name)
  }
  assert.match(res.body, /llmesh_http_requests_total\{method="GET",route="\/mesh\/status",status="200"\} 1/)
})

test('bad input gets a typed 4xx error body and changes nothing', async (t) => {
  const a = await startTestNode(t)
  const app = createApiServer(a)
  t.after(() => app.close())
  const cases = [
    {
      method: 'POST' as const,
      url: '/mesh/dht/provide',
      payload: '{"cid": ',
      headers: { 'content-type': 'application/json' },
      status: 400
    },
    { method: 'POST' as const, url: '/mesh/dht/provide', payload: { cid: 'bafy-not-a-cid' }, status: 400, code: 'invalid_cid' },
    { method: 'POST' as const, url: '/mesh/dht/provide', payload: { cid: 42 }, status: 400, code: 'invalid_cid' },
    { method: 'POST' as const, url: '/mesh/dht/provide', payload: { cid: (await randomCid()).toString(), extra: 1 }, status: 400 },
    {
      method: 'POST' as const,
      url: '/mesh/dht/provide',
      payload: JSON.stringify({ cid: 'x'.repeat(LIMITS.maxHttpBodyBytes) }),
      headers: { 'content-type': 'application/json' },
      status: 413
    },
    { method: 'GET' as const, url: `/mesh/dht/providers/${'z'.repeat(300)}`, status: 400, code: 'invalid_cid' },
    { method: 'GET' as const, url: `/mesh/dht/providers/${'z'.repeat(LIMITS.maxUrlParamBytes + 1)}`, status: 414 },
    { method: 'GET' as const, url: '/no/such/route', status: 404, code: 'not_found' }
  ]
  for (const c of cases) {
    const res = await app.inject({ method: c.method, url: c.url, payload: c.payload, headers: c.headers })
    assert.equal(res.statusCode, c.status, `${c.method} ${c.url.slice(0, 40)}: ${res.body.slice(0, 200)}`)
    const body = res.json()
    assert.equal(typeof body.error.message, 'string')
    assert.equal(typeof body.error.type, 'string')
    assert.equal(typeof body.error.code, 'string')
    if (c.code != null) assert.equal(body.error.code, c.code)
  }
  const status = await app.inject({ method: 'GET', url: '/mesh/status' })
  assert.equal(status.statusCode, 200)
})

test("a CID provided through one node's API is found through another's", async (t) => {
  const a = await startTestNode(t)
  const b = await startTestNode(t, { p2p: { bootstrap: [addressOf(a)] } })
  const c = await startTestNode(t, { p2p: { bootstrap: [addressOf(a)] } })
  await b.joinMesh()
  await c.joinMesh()
  const appB = createApiServer(b)
  const appC = createApiServer(c)
  t.after(() => appB.close())
  t.after(() => appC.close())
  const cid = await randomCid()
  const provided = await appB.inject({ method: 'POST', url: '/mesh/dht/provide', payload: { cid: cid.toString() } })
  assert.equal(provided.statusCode, 200, provided.body)
  const found = await waitFor(
    'c to find b as provider',
    async () => {
      const res = await appC.inject({ method: 'GET', url: `/mesh/dht/providers/${cid}` })
      const providers: Array<{ peerId: string }> = res.json().providers
      return providers.some((p) => p.peerId === peerIdOf(b)) ? providers : undefined
    },
    15_000,
    500
  )
  assert.ok(found.length >= 1)
})

test('a node without a chain says so on the chain endpoints', async (t) => {
  const a = await startTestNode(t)
  const app = createApiServer(a)
  t.after(() => app.close())
  assert.equal((await app.inject({ method: 'GET', url: '/mesh/status' })).json().height, null)
  for (const url of ['/mesh/chain/status', '/mesh/chain/blocks/1', `/mesh/accounts/${peerIdOf(a)}`, '/mesh/tx/abc']) {
    const res = await app.inject({ method: 'GET', url })
    assert.equal(res.statusCode, 404, url)
    assert.equal(res.json().error.code, 'no_chain')
  }
  const post = await app.inject({ method: 'POST', url: '/mesh/tx', payload: { tx: 'AAAA' } })
  assert.equal(post.json().error.code, 'no_chain')
})
