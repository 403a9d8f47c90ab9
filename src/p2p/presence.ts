import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import { z } from 'zod'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import { LIMITS, PRESENCE_TOPIC, ROLES } from '../params/index.ts'
import type { MeshLibp2p } from './create-libp2p.ts'

/** What a node says about itself on the presence topic (the gossip message is signed by its key). */
export const PresenceSchema = z
  .object({
    v: z.literal(1),
    seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    time: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    version: z.string().max(64),
    roles: z.array(z.enum(ROLES)).max(ROLES.length),
    api: z.string().max(256).nullable()
  })
  .strict()

export type Presence = z.infer<typeof PresenceSchema>

export interface KnownPeer {
  peerId: string
  presence: Presence
  receivedAt: number
}

export type PresenceRejectReason = 'too_large' | 'malformed' | 'stale'

/** Decodes and checks one presence message; throws on anything but a well-formed one. */
export function decodePresence(bytes: Uint8Array): Presence {
  return PresenceSchema.parse(decodeCanonical(bytes, LIMITS.maxPresenceBytes))
}

export interface PresenceComponents {
  libp2p: MeshLibp2p
  log: Logger
  now: () => number
  /** Called for every presence message received: accepted or the reason it was rejected. */
  onMessage?: (result: 'accepted' | PresenceRejectReason) => void
  onPublish?: () => void
}

export interface PresenceInit {
  intervalMs: number
  version: string
  roles: Presence['roles']
  /** The node's API URL, read at each announcement (the API may start after presence). */
  api: () => string | null
}

/**
 * Presence: every node announces itself on a gossip topic at an interval, and keeps the last
 * announcement of every peer it hears (bounded). Malformed announcements are rejected in the
 * gossipsub validator, so the sender's score drops and the message is not forwarded.
 */
export class PresenceService {
  private readonly c: PresenceComponents
  private readonly init: PresenceInit
  private readonly known = new Map<string, KnownPeer>()
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  private readonly onGossip = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== PRESENCE_TOPIC || msg.type !== 'signed') return
    // the validator already decoded it; decoding again keeps the validator free of side effects
    this.remember(msg.from, decodePresence(msg.data))
  }

  constructor(components: PresenceComponents, init: PresenceInit) {
    this.c = components
    this.init = init
  }

  start(): void {
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.topicValidators.set(PRESENCE_TOPIC, (from, msg) => this.validate(from, msg))
    pubsub.addEventListener('message', this.onGossip)
    pubsub.subscribe(PRESENCE_TOPIC)
    this.timer = setInterval(() => void this.announce().catch(() => {}), this.init.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onGossip)
    pubsub.topicValidators.delete(PRESENCE_TOPIC)
  }

  /** Publishes this node's presence now; returns the sequence number it carried. */
  async announce(): Promise<number> {
    const presence: Presence = {
      v: 1,
      seq: ++this.seq,
      time: this.c.now(),
      version: this.init.version,
      roles: this.init.roles,
      api: this.init.api()
    }
    await this.c.libp2p.services.pubsub.publish(PRESENCE_TOPIC, encodeCanonical(presence))
    this.c.onPublish?.()
    return presence.seq
  }

  /** Peers heard from, newest first. */
  peers(): KnownPeer[] {
    return [...this.known.values()].sort((a, b) => b.receivedAt - a.receivedAt)
  }

  private validate(from: PeerId, msg: Message): TopicValidatorResult {
    let result: 'accepted' | PresenceRejectReason = 'accepted'
    try {
      if (msg.data.byteLength > LIMITS.maxPresenceBytes) result = 'too_large'
      else {
        const presence = decodePresence(msg.data)
        const previous = msg.type === 'signed' ? this.known.get(msg.from.toString()) : undefined
        if (previous != null && previous.presence.seq >= presence.seq) result = 'stale'
      }
    } catch {
      result = 'malformed'
    }
    this.c.onMessage?.(result)
    if (result === 'accepted') return TopicValidatorResult.Accept
    this.c.log.debug({ from: from.toString(), result }, 'presence message rejected')
    // a stale message is no offence (it may be a late duplicate); a malformed one is
    return result === 'stale' ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
  }

  private remember(from: PeerId, presence: Presence): void {
    const key = from.toString()
    this.known.delete(key)
    this.known.set(key, { peerId: key, presence, receivedAt: this.c.now() })
    if (this.known.size > LIMITS.maxKnownPeers) {
      const oldest = this.known.keys().next().value
      if (oldest != null) this.known.delete(oldest)
    }
  }
}
