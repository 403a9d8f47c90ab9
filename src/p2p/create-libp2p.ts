import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type GossipSub, gossipsub } from '@libp2p/gossipsub'
import { type Identify, identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { type KadDHT, kadDHT, passthroughMapper, removePrivateAddressesMapper } from '@libp2p/kad-dht'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { DHT_PROTOCOL, LIMITS, LOCAL_NETWORK, VERSION } from '../params/index.ts'
// stops libp2p's length-prefixed decoder from throwing (and catching) an Error per received chunk
import './lp-decoder-fix.ts'
// libp2p's Ed25519 signatures on libsodium (noise, gossipsub, identify), not a JWK key per call
import './fast-ed25519.ts'
// one socket write per message, and yamux window updates at half the window rather than per frame
import './transport-fixes.ts'
import { noiseCrypto } from './noise-crypto.ts'

export interface P2pInit {
  privateKey: PrivateKey
  /** Multiaddrs to listen on. */
  listen: string[]
  /** Multiaddrs to announce instead of the listen addresses (public IP, port mapping). */
  announce: string[]
  maxConnections: number
  /** Every node shares one IP (devnet, tests): relax per-IP limits and keep loopback addresses. */
  localNetwork: boolean
}

export interface MeshServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

export type MeshLibp2p = Libp2p<MeshServices>

/**
 * Builds the node's libp2p stack: TCP + noise + yamux, identify, ping, a kad-dht of our own
 * protocol in server mode, and gossipsub. Not started; `start()` is the caller's.
 */
export async function createMeshLibp2p(init: P2pInit): Promise<MeshLibp2p> {
  const local = init.localNetwork
  return createLibp2p<MeshServices>({
    start: false,
    privateKey: init.privateKey,
    nodeInfo: { name: 'llmesh', version: VERSION },
    addresses: { listen: init.listen, announce: init.announce },
    transports: [tcp({ maxConnections: init.maxConnections + LIMITS.maxIncomingPendingConnections })],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    connectionManager: {
      maxConnections: init.maxConnections,
      maxIncomingPendingConnections: LIMITS.maxIncomingPendingConnections,
      inboundConnectionThreshold: local ? LOCAL_NETWORK.inboundConnectionThreshold : LIMITS.inboundConnectionThreshold,
      // every devnet node dials from 127.0.0.1: without this the per-IP dial rate limit resets them
      allow: local ? [...LOCAL_NETWORK.allow] : []
    },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: false,
        // kad-dht drops loopback/private addresses by default, which a local network consists of
        peerInfoMapper: local ? passthroughMapper : removePrivateAddressesMapper,
        maxInboundStreams: LIMITS.maxInboundStreamsPerProtocol,
        initialQuerySelfInterval: local ? 500 : undefined
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        maxInboundDataLength: LIMITS.maxGossipFrameBytes,
        maxInboundStreams: LIMITS.maxInboundStreamsPerProtocol,
        scoreParams: local
          ? {
              // more than 10 peers on one IP would be penalised until the mesh stays empty
              IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1'])
            }
          : {}
      })
    }
  })
}
