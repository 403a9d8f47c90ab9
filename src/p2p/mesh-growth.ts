import { randomBytes } from 'node:crypto'
import type { PeerId, PeerInfo } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { MeshLibp2p } from './create-libp2p.ts'

export interface MeshGrowthInit {
  /** Dial discovered peers until the node has this many connections. */
  targetPeers: number
  /** How often to look for more peers while under target. */
  intervalMs: number
  /** Longest one random DHT walk may take. */
  walkTimeoutMs?: number
  /** Peers from the peer store dialled per round. */
  dialsPerRound?: number
}

export interface MeshGrowthComponents {
  libp2p: MeshLibp2p
  log: Logger
}

/**
 * Grows the mesh by itself: a peer that discovery reports (DHT responses, identify) is dialled
 * while the node is under its target, and every interval an under-target node walks the DHT
 * towards a random key and redials peers it knows but is not connected to (a restarted peer).
 */
export class MeshGrowth {
  private readonly libp2p: MeshLibp2p
  private readonly log: Logger
  private readonly init: Required<MeshGrowthInit>
  private timer: NodeJS.Timeout | undefined
  private walking = false
  private controller = new AbortController()
  private readonly onDiscovery = (evt: CustomEvent<PeerInfo>): void => {
    this.maybeDial(evt.detail.id)
  }

  constructor(components: MeshGrowthComponents, init: MeshGrowthInit) {
    this.libp2p = components.libp2p
    this.log = components.log
    this.init = { walkTimeoutMs: 10_000, dialsPerRound: 8, ...init }
  }

  start(): void {
    this.controller = new AbortController()
    this.libp2p.addEventListener('peer:discovery', this.onDiscovery)
    this.timer = setInterval(() => void this.round(), this.init.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.controller.abort()
    this.libp2p.removeEventListener('peer:discovery', this.onDiscovery)
  }

  private underTarget(): boolean {
    return this.libp2p.getConnections().length < this.init.targetPeers
  }

  private maybeDial(peer: PeerId): void {
    if (peer.equals(this.libp2p.peerId) || !this.underTarget()) return
    if (this.libp2p.getConnections(peer).length > 0) return
    this.libp2p.dial(peer, { signal: this.controller.signal }).then(
      () => this.log.debug({ peer: peer.toString() }, 'dialled discovered peer'),
      (err: Error) => this.log.debug({ peer: peer.toString(), err: err.message }, 'could not dial discovered peer')
    )
  }

  /** One growth round; public so tests and the node can run one now. */
  async round(): Promise<void> {
    if (this.walking || !this.underTarget() || this.controller.signal.aborted) return
    this.walking = true
    try {
      const known = await this.libp2p.peerStore.all({ limit: 1_000 })
      const idle = known.filter((p) => this.libp2p.getConnections(p.id).length === 0 && p.addresses.length > 0)
      for (const p of idle.slice(0, this.init.dialsPerRound)) this.maybeDial(p.id)
      if (this.libp2p.getConnections().length === 0) return // nobody to ask
      const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.init.walkTimeoutMs)])
      for await (const event of this.libp2p.services.dht.getClosestPeers(randomBytes(32), { signal })) {
        if (event.name === 'FINAL_PEER') this.maybeDial(event.peer.id)
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'random DHT walk ended early')
    } finally {
      this.walking = false
    }
  }
}
