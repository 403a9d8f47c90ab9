import type { TestContext } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/p2p/index.ts'

/**
 * A started libp2p with the node's stack (kad-dht in server mode, local-network settings) on a
 * random loopback port, stopped when the test ends. Not an `LlmeshNode`: a node runs its own
 * `ModelService`, and these tests bring their own store, exchange or service (one bitswap
 * handler per libp2p).
 */
export async function startMeshLibp2p(t: TestContext, privateKey?: PrivateKey): Promise<MeshLibp2p> {
  const libp2p = await createMeshLibp2p({
    privateKey: privateKey ?? (await generateKeyPair('Ed25519')),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    announce: [],
    maxConnections: 50,
    localNetwork: true
  })
  await libp2p.start()
  t.after(() => libp2p.stop())
  return libp2p
}

/** The loopback address of `libp2p`, to dial it. */
export function loopbackAddress(libp2p: MeshLibp2p): Multiaddr {
  const addr = libp2p.getMultiaddrs().find((a) => a.toString().includes('/127.0.0.1/'))
  if (addr == null) throw new Error('libp2p has no loopback address')
  return addr
}
