import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeCanonical } from '../../src/codec/index.ts'
import { LIMITS, PRESENCE_TOPIC, VERSION } from '../../src/params/index.ts'
import { waitFor } from '../helpers.ts'
import { addressOf, peerIdOf, startTestNode } from '../node-fixture.ts'

/** Parts of the gossipsub implementation that its exported interface does not type. */
interface GossipInternals {
  getMeshPeers(topic: string): string[]
  getScore(peerId: string): number
}

function internals(node: Awaited<ReturnType<typeof startTestNode>>): GossipInternals {
  return node.libp2p.services.pubsub as unknown as GossipInternals
}

async function counter(node: Awaited<ReturnType<typeof startTestNode>>, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await node.metrics.registry.getSingleMetric(name)?.get()
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
  return value?.value ?? 0
}

test('malformed and oversized presence messages from a peer are rejected, counted and not remembered', async (t) => {
  const a = await startTestNode(t)
  const b = await startTestNode(t, { p2p: { bootstrap: [addressOf(a)] } })
  await b.joinMesh()
  const pubsubA = a.libp2p.services.pubsub
  await waitFor(
    "b in a's presence mesh",
    async () => (pubsubA.getSubscribers(PRESENCE_TOPIC).some((p) => p.equals(b.libp2p.peerId)) ? true : undefined),
    10_000
  )
  await waitFor('gossip mesh heartbeat', async () => (internals(a).getMeshPeers(PRESENCE_TOPIC).length > 0 ? true : undefined), 10_000)

  // node a turns hostile: it drops its own validator and publishes garbage on the topic
  pubsubA.topicValidators.delete(PRESENCE_TOPIC)
  await pubsubA.publish(PRESENCE_TOPIC, new TextEncoder().encode('not cbor at all'))
  await pubsubA.publish(
    PRESENCE_TOPIC,
    encodeCanonical({ v: 1, seq: 1, time: 0, version: 'x'.repeat(LIMITS.maxPresenceBytes), roles: [], api: null })
  )
  await pubsubA.publish(PRESENCE_TOPIC, encodeCanonical({ v: 9, evil: true }))

  await waitFor(
    'b to reject three messages',
    async () => {
      const malformed = await counter(b, 'llmesh_p2p_rejected_messages_total', { reason: 'malformed' })
      const tooLarge = await counter(b, 'llmesh_p2p_rejected_messages_total', { reason: 'too_large' })
      return malformed === 2 && tooLarge === 1 ? true : undefined
    },
    10_000
  )
  // a's own announcements (every 5 s on a local network) may be remembered; nothing of the garbage is
  const fromA = b.knownPeers().filter((p) => p.peerId === peerIdOf(a))
  assert.ok(
    fromA.every((p) => p.presence.v === 1 && p.presence.version === VERSION),
    `nothing from the garbage was remembered: ${JSON.stringify(fromA).slice(0, 200)}`
  )
  assert.ok(internals(b).getScore(peerIdOf(a)) <= 0, 'the sender is not rewarded')

  // b is unharmed, and a well-formed announcement still goes through
  const seq = await b.announcePresence()
  assert.ok(seq > 0)
  assert.equal(b.status().peers.includes(peerIdOf(a)), true)
})

test('a presence announcement reaches the other node and is remembered', async (t) => {
  const a = await startTestNode(t, { roles: ['host'] })
  const b = await startTestNode(t, { p2p: { bootstrap: [addressOf(a)] } })
  await b.joinMesh()
  await waitFor('gossip mesh', async () => (internals(a).getMeshPeers(PRESENCE_TOPIC).length > 0 ? true : undefined), 10_000)
  const seq = await a.announcePresence()
  const seen = await waitFor(
    'b to hear a',
    async () => b.knownPeers().find((p) => p.peerId === peerIdOf(a) && p.presence.seq >= seq),
    10_000
  )
  assert.deepEqual(seen.presence.roles, ['host'])
  assert.equal((await counter(b, 'llmesh_gossip_messages_received_total', { result: 'accepted' })) >= 1, true)
})
