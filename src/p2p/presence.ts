import { z } from 'zod'
import { decodeCanonical } from '../codec/index.ts'
import { LIMITS, PRESENCE_TOPIC, ROLES } from '../params/index.ts'
import { PeerRecords, type PeerRecordsComponents } from './peer-records.ts'

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

export type PresenceComponents = PeerRecordsComponents

export interface PresenceInit {
  intervalMs: number
  version: string
  roles: Presence['roles']
  /** The node's API URL, read at each announcement (the API may start after presence). */
  api: () => string | null
}

/**
 * Presence: every node announces itself (version, roles, API) on a gossip topic at an interval,
 * and keeps the last announcement of every peer it hears (bounded).
 */
export class PresenceService {
  private readonly records: PeerRecords<Presence>

  constructor(components: PresenceComponents, init: PresenceInit) {
    this.records = new PeerRecords(components, {
      topic: PRESENCE_TOPIC,
      maxBytes: LIMITS.maxPresenceBytes,
      maxPeers: LIMITS.maxKnownPeers,
      intervalMs: init.intervalMs,
      decode: decodePresence,
      build: () => ({ v: 1, version: init.version, roles: init.roles, api: init.api() })
    })
  }

  start(): void {
    this.records.start()
  }

  stop(): void {
    this.records.stop()
  }

  /** Publishes this node's presence now; returns the sequence number it carried. */
  async announce(): Promise<number> {
    return (await this.records.announce()) ?? 0
  }

  /** Peers heard from, newest first. */
  peers(): KnownPeer[] {
    return this.records.records().map((r) => ({ peerId: r.peerId, presence: r.record, receivedAt: r.receivedAt }))
  }
}
