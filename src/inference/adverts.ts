import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Logger } from 'pino'
import { z } from 'zod'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import { type SignatureVerifier, verifySealKey } from '../crypto/index.ts'
import type { MeshLibp2p } from '../p2p/index.ts'
import { HOST_ADVERT_TOPIC, HOST_LIMITS, INFERENCE_LIMITS, MODEL_LIMITS } from '../params/index.ts'

/**
 * Host adverts: every host publishes, at an interval, the models it serves, its load and its
 * sealing key (with the signature binding it to the host's identity). Edges keep the latest
 * advert of each host, forget it after a TTL, and route from them.
 */
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.byteLength <= 64, { message: 'expected at most 64 bytes' })

export const AdvertSchema = z
  .object({
    v: z.literal(1),
    seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    time: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    models: z
      .array(
        z
          .object({
            cid: z.string().min(1).max(INFERENCE_LIMITS.maxModelIdBytes),
            name: z.string().max(MODEL_LIMITS.maxModelNameBytes)
          })
          .strict()
      )
      .max(HOST_LIMITS.maxAdvertModels),
    /** Jobs running or queued. */
    active: z.number().int().min(0).max(1_000_000),
    /** Jobs the host runs at once without queueing (its engine's sequences over its models). */
    capacity: z.number().int().min(1).max(1_000_000),
    /** Price the host asks, as a multiplier of the base fee in basis points (10,000 = 1×). */
    priceBps: z.number().int().min(0).max(1_000_000),
    key: bytes,
    keySig: bytes
  })
  .strict()

export type Advert = z.infer<typeof AdvertSchema>

export interface KnownHost {
  peerId: string
  advert: Advert
  receivedAt: number
}

export type AdvertRejectReason = 'too_large' | 'malformed' | 'bad_key' | 'stale'

export function decodeAdvert(bytes: Uint8Array): Advert {
  return AdvertSchema.parse(decodeCanonical(bytes, HOST_LIMITS.maxAdvertBytes))
}

export interface HostAdvertsComponents {
  libp2p: MeshLibp2p
  log: Logger
  now: () => number
  verifier: SignatureVerifier
  onMessage?: (result: 'accepted' | AdvertRejectReason) => void
  onPublish?: () => void
}

export interface HostAdvertsInit {
  intervalMs: number
  /** Adverts older than this are forgotten. */
  ttlMs: number
  /** This node's own advert (without seq and time), if it is a host; read at each announcement. */
  self?: () => Omit<Advert, 'v' | 'seq' | 'time'>
}

export class HostAdverts {
  private readonly c: HostAdvertsComponents
  private readonly init: HostAdvertsInit
  private readonly known = new Map<string, KnownHost>()
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  private readonly onGossip = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== HOST_ADVERT_TOPIC || msg.type !== 'signed') return
    const key = msg.from.toString()
    this.known.delete(key)
    this.known.set(key, { peerId: key, advert: decodeAdvert(msg.data), receivedAt: this.c.now() })
    if (this.known.size > HOST_LIMITS.maxKnownHosts) {
      const oldest = this.known.keys().next().value
      if (oldest != null) this.known.delete(oldest)
    }
  }

  constructor(components: HostAdvertsComponents, init: HostAdvertsInit) {
    this.c = components
    this.init = init
  }

  start(): void {
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.topicValidators.set(HOST_ADVERT_TOPIC, (from, msg) => this.validate(from.toString(), msg))
    pubsub.addEventListener('message', this.onGossip)
    pubsub.subscribe(HOST_ADVERT_TOPIC)
    if (this.init.self != null) {
      this.timer = setInterval(() => void this.announce().catch(() => {}), this.init.intervalMs)
      this.timer.unref()
    }
  }

  stop(): void {
    clearInterval(this.timer)
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onGossip)
    pubsub.topicValidators.delete(HOST_ADVERT_TOPIC)
  }

  /** Publishes this host's advert now (no-op for a node that is not a host). */
  async announce(): Promise<void> {
    if (this.init.self == null) return
    const advert: Advert = { ...this.init.self(), v: 1, seq: ++this.seq, time: this.c.now() }
    try {
      await this.c.libp2p.services.pubsub.publish(HOST_ADVERT_TOPIC, encodeCanonical(advert))
      this.c.onPublish?.()
    } catch (err) {
      // no subscriber yet: the next interval tries again
      if (!/NoPeersSubscribedToTopic|PublishError/.test(String((err as Error).message))) throw err
    }
  }

  /** Hosts with a live advert, newest first. */
  hosts(): KnownHost[] {
    const cutoff = this.c.now() - this.init.ttlMs
    const live: KnownHost[] = []
    for (const [key, h] of this.known) {
      if (h.receivedAt < cutoff) this.known.delete(key)
      else live.push(h)
    }
    return live.reverse()
  }

  /** Live hosts that advertise `cid`. */
  hostsFor(cid: string): KnownHost[] {
    return this.hosts().filter((h) => h.advert.models.some((m) => m.cid === cid))
  }

  /** The live advert of one host. */
  host(peerId: string): KnownHost | undefined {
    const h = this.known.get(peerId)
    return h != null && h.receivedAt >= this.c.now() - this.init.ttlMs ? h : undefined
  }

  private validate(from: string, msg: Message): TopicValidatorResult {
    let result: 'accepted' | AdvertRejectReason = 'accepted'
    try {
      if (msg.data.byteLength > HOST_LIMITS.maxAdvertBytes) result = 'too_large'
      else {
        const advert = decodeAdvert(msg.data)
        const publisher = msg.type === 'signed' ? msg.from.toString() : from
        const previous = this.known.get(publisher)
        if (previous != null && previous.advert.seq >= advert.seq && previous.advert.time >= advert.time) result = 'stale'
        else if (!verifySealKey(this.c.verifier, publisher, advert.key, advert.keySig)) result = 'bad_key'
      }
    } catch {
      result = 'malformed'
    }
    this.c.onMessage?.(result)
    if (result === 'accepted') return TopicValidatorResult.Accept
    this.c.log.debug({ from, result }, 'host advert rejected')
    return result === 'stale' ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
  }
}
