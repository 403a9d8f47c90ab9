import { z } from 'zod'
import { decodeCanonical } from '../codec/index.ts'
import { type SignatureVerifier, verifySealKey } from '../crypto/index.ts'
import { PeerRecords, type PeerRecordsComponents } from '../p2p/index.ts'
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

export interface HostAdvertsComponents extends PeerRecordsComponents {
  verifier: SignatureVerifier
}

export interface HostAdvertsInit {
  intervalMs: number
  /** Adverts older than this are forgotten. */
  ttlMs: number
  /** This node's own advert (without seq and time), if it is a host; read at each announcement. */
  self?: () => Omit<Advert, 'v' | 'seq' | 'time'>
}

export class HostAdverts {
  private readonly records: PeerRecords<Advert>

  constructor(components: HostAdvertsComponents, init: HostAdvertsInit) {
    const self = init.self
    this.records = new PeerRecords(components, {
      topic: HOST_ADVERT_TOPIC,
      maxBytes: HOST_LIMITS.maxAdvertBytes,
      maxPeers: HOST_LIMITS.maxKnownHosts,
      intervalMs: init.intervalMs,
      ttlMs: init.ttlMs,
      decode: decodeAdvert,
      // the sealing key must be the publisher's own
      check: (publisher, advert) => (verifySealKey(components.verifier, publisher, advert.key, advert.keySig) ? null : 'bad_key'),
      build: self == null ? undefined : () => ({ v: 1, ...self() })
    })
  }

  start(): void {
    this.records.start()
  }

  stop(): void {
    this.records.stop()
  }

  /** Publishes this host's advert now (no-op for a node that is not a host). */
  async announce(): Promise<void> {
    await this.records.announce()
  }

  /** Hosts with a live advert, newest first. */
  hosts(): KnownHost[] {
    return this.records.records().map((r) => ({ peerId: r.peerId, advert: r.record, receivedAt: r.receivedAt }))
  }

  /** Live hosts that advertise `cid`. */
  hostsFor(cid: string): KnownHost[] {
    return this.hosts().filter((h) => h.advert.models.some((m) => m.cid === cid))
  }
}
