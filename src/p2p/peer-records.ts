import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Logger } from 'pino'
import { encodeCanonical } from '../codec/index.ts'
import type { MeshLibp2p } from './create-libp2p.ts'

/** Every record a peer publishes carries a sequence number and the publisher's clock. */
export interface PeerRecordHeader {
  seq: number
  time: number
}

export interface KnownRecord<T> {
  peerId: string
  record: T
  receivedAt: number
}

/** `malformed` and `too_large` are offences (the sender's score drops); `stale` is not; others come from `check`. */
export type RecordResult = 'accepted' | 'too_large' | 'malformed' | 'stale' | (string & {})

export interface PeerRecordsComponents {
  libp2p: MeshLibp2p
  log: Logger
  now: () => number
  /** Called for every record received: accepted or the reason it was refused. */
  onMessage?: (result: RecordResult) => void
  onPublish?: () => void
}

export interface PeerRecordsInit<T extends PeerRecordHeader> {
  topic: string
  maxBytes: number
  /** Records kept (one per peer); the least recently heard is dropped beyond this. */
  maxPeers: number
  intervalMs: number
  /** Records older than this are forgotten; none: kept until pushed out. */
  ttlMs?: number
  /** Decodes and checks the shape of a record; throws on anything else. */
  decode: (bytes: Uint8Array) => T
  /** A further check of a well-formed record from `publisher`: a reason to refuse it, or null. */
  check?: (publisher: string, record: T) => string | null
  /** This node's own record without seq and time, read at each announcement; none: it does not publish. */
  build?: () => Omit<T, 'seq' | 'time'>
}

/**
 * A gossip topic where each peer publishes its latest record at an interval (presence, host
 * adverts), and every node keeps the latest record of each peer it hears, bounded. Records are
 * checked in the gossipsub validator, so a malformed one lowers the sender's score and is not
 * forwarded. A record whose seq and time are both no newer than the one held is stale (a late
 * duplicate); a peer that restarted counts its seq from 1 again but its clock moved on.
 */
export class PeerRecords<T extends PeerRecordHeader> {
  private readonly c: PeerRecordsComponents
  private readonly init: PeerRecordsInit<T>
  private readonly known = new Map<string, KnownRecord<T>>()
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  private readonly onGossip = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== this.init.topic || msg.type !== 'signed') return
    // the validator already decoded it; decoding again keeps the validator free of side effects
    const key = msg.from.toString()
    this.known.delete(key)
    this.known.set(key, { peerId: key, record: this.init.decode(msg.data), receivedAt: this.c.now() })
    if (this.known.size > this.init.maxPeers) {
      const oldest = this.known.keys().next().value
      if (oldest != null) this.known.delete(oldest)
    }
  }

  constructor(components: PeerRecordsComponents, init: PeerRecordsInit<T>) {
    this.c = components
    this.init = init
  }

  start(): void {
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.topicValidators.set(this.init.topic, (from, msg) => this.validate(from.toString(), msg))
    pubsub.addEventListener('message', this.onGossip)
    pubsub.subscribe(this.init.topic)
    if (this.init.build != null) {
      this.timer = setInterval(() => void this.announce().catch(() => {}), this.init.intervalMs)
      this.timer.unref()
    }
  }

  stop(): void {
    clearInterval(this.timer)
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onGossip)
    pubsub.topicValidators.delete(this.init.topic)
  }

  /** Publishes this node's record now; returns its seq (undefined if this node publishes none). */
  async announce(): Promise<number | undefined> {
    if (this.init.build == null) return undefined
    const record = { ...this.init.build(), seq: ++this.seq, time: this.c.now() }
    await this.c.libp2p.services.pubsub.publish(this.init.topic, encodeCanonical(record))
    this.c.onPublish?.()
    return record.seq
  }

  /** Live records, most recently heard first. */
  records(): KnownRecord<T>[] {
    const cutoff = this.init.ttlMs == null ? Number.NEGATIVE_INFINITY : this.c.now() - this.init.ttlMs
    const live: KnownRecord<T>[] = []
    for (const [key, r] of this.known) {
      if (r.receivedAt < cutoff) this.known.delete(key)
      else live.push(r)
    }
    return live.reverse()
  }

  /** The live record of one peer. */
  get(peerId: string): KnownRecord<T> | undefined {
    const r = this.known.get(peerId)
    return r != null && (this.init.ttlMs == null || r.receivedAt >= this.c.now() - this.init.ttlMs) ? r : undefined
  }

  private validate(from: string, msg: Message): TopicValidatorResult {
    let result: RecordResult = 'accepted'
    try {
      if (msg.data.byteLength > this.init.maxBytes) result = 'too_large'
      else {
        const record = this.init.decode(msg.data)
        const publisher = msg.type === 'signed' ? msg.from.toString() : from
        const previous = this.known.get(publisher)?.record
        if (previous != null && previous.seq >= record.seq && previous.time >= record.time) result = 'stale'
        else result = this.init.check?.(publisher, record) ?? 'accepted'
      }
    } catch {
      result = 'malformed'
    }
    this.c.onMessage?.(result)
    if (result === 'accepted') return TopicValidatorResult.Accept
    this.c.log.debug({ from, topic: this.init.topic, result }, 'gossip record refused')
    return result === 'stale' ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
  }
}
