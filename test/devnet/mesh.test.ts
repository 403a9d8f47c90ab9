import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { DevnetNodeInfo } from '../../src/cli/devnet.ts'
import type { NodeStatus } from '../../src/node/index.ts'
import { spawnCli, startDevnet } from '../cli-runner.ts'
import { alive, freePortBase, tempDir, waitFor } from '../helpers.ts'

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) })
  assert.ok(res.ok, `${url}: HTTP ${res.status} ${await res.clone().text()}`)
  return (await res.json()) as T
}

const status = (n: DevnetNodeInfo): Promise<NodeStatus> => getJson<NodeStatus>(`${n.apiUrl}/mesh/status`)

test('a 4-node devnet of OS processes: full mesh, DHT, gossip, and a killed node rejoins', { timeout: 240_000 }, async (t) => {
  const base = await freePortBase(4)
  const dir = join(await tempDir(t), 'devnet')
  const { devnet, nodes } = await startDevnet(t, dir, ['--nodes', '4', '--base-port', String(base)])
  assert.equal(nodes.length, 4)
  for (const [i, n] of nodes.entries()) {
    assert.equal(n.index, i)
    assert.equal(n.apiUrl, `http://127.0.0.1:${base + i}`)
    assert.equal(n.home, join(dir, `node-${i}`))
    assert.ok(alive(n.pid), `node-${i} pid ${n.pid} runs`)
    assert.ok(n.multiaddrs.some((m) => m.endsWith(`/p2p/${n.peerId}`)))
  }
  const [n0, n1, n2, n3] = nodes as [DevnetNodeInfo, DevnetNodeInfo, DevnetNodeInfo, DevnetNodeInfo]

  // every node lists the other three
  for (const n of nodes) {
    const s = await status(n)
    assert.equal(s.peerId, n.peerId)
    assert.deepEqual(
      [...s.peers].sort(),
      nodes
        .filter((m) => m !== n)
        .map((m) => m.peerId)
        .sort()
    )
  }
  // node 0 is the edge, not a host; the others host
  assert.deepEqual((await status(n0)).roles, ['edge', 'validator'])
  assert.deepEqual((await status(n1)).roles, ['edge', 'host', 'validator'])

  // a DHT provide on node 1 is found by node 3
  const cid = CID.create(1, raw.code, await sha256.digest(crypto.getRandomValues(new Uint8Array(32)))).toString()
  await getJson(`${n1.apiUrl}/mesh/dht/provide`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ cid })
  })
  await waitFor(
    'node 3 to find node 1 as provider',
    async () => {
      const r = await getJson<{ providers: Array<{ peerId: string }> }>(`${n3.apiUrl}/mesh/dht/providers/${cid}`)
      return r.providers.some((p) => p.peerId === n1.peerId) ? true : undefined
    },
    30_000,
    500
  )

  // a gossip message from node 0 reaches all
  const { seq } = await getJson<{ seq: number }>(`${n0.apiUrl}/mesh/presence`, { method: 'POST' })
  for (const n of [n1, n2, n3]) {
    await waitFor(
      `node-${n.index} to hear node 0's presence #${seq}`,
      async () => {
        const r = await getJson<{ known: Array<{ peerId: string; presence: { seq: number; api: string | null } }> }>(
          `${n.apiUrl}/mesh/peers`
        )
        const heard = r.known.find((k) => k.peerId === n0.peerId)
        return heard != null && heard.presence.seq >= seq ? heard : undefined
      },
      15_000
    )
  }

  // kill -9 node 2: the others drop it
  process.kill(n2.pid, 'SIGKILL')
  for (const n of [n0, n1, n3]) {
    await waitFor(`node-${n.index} to drop node 2`, async () => ((await status(n)).peers.includes(n2.peerId) ? undefined : true), 30_000)
  }
  // start it again by hand: it rejoins the whole mesh
  const restarted = spawnCli(t, ['start', '--home', n2.home])
  await waitFor(
    'node 2 back with all three peers',
    async () => {
      if (restarted.child.exitCode != null) throw new Error(`node 2 exited: ${(await restarted.done).stderr}`)
      const s = await status(n2)
      return [n0, n1, n3].every((m) => s.peers.includes(m.peerId)) ? s : undefined
    },
    60_000,
    500
  )
  for (const n of [n0, n1, n3]) {
    await waitFor(
      `node-${n.index} to list node 2 again`,
      async () => ((await status(n)).peers.includes(n2.peerId) ? true : undefined),
      30_000
    )
  }

  // SIGTERM to the devnet stops its nodes; the hand-started node stops on its own SIGTERM
  devnet.child.kill('SIGTERM')
  const dn = await devnet.done
  assert.equal(dn.code, 0, dn.stderr)
  for (const n of [n0, n1, n3]) {
    await waitFor(`node-${n.index} process to end`, async () => (alive(n.pid) ? undefined : true), 15_000)
  }
  restarted.child.kill('SIGTERM')
  assert.equal((await restarted.done).code, 0)
})
