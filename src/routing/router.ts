import { RouterConfigError } from './errors.ts'

/**
 * The edge's host router: which host should serve the next request. Pure bookkeeping: the clock
 * and the random source are passed in, nothing here does I/O, so the same calls with the same
 * clock and random sequence give the same rankings.
 */

/** Every router setting's default; a `RouterInit` field overrides one. */
export const ROUTING_DEFAULTS = {
  /** Weight of a new latency sample in the per-host EWMA (0 < α ≤ 1). */
  ewmaAlpha: 0.3,
  /**
   * Latency assumed for a host never measured, in ms. Optimistic on purpose, so a new host is tried
   * soon and then ranked on what it really does.
   */
  initialLatencyMs: 250,
  /** A host's estimate relaxes toward `initialLatencyMs` with this half-life while no sample comes, so a once-slow host gets retried. */
  latencyHalfLifeMs: 60_000,
  /** Latency samples and estimates are clamped to [minLatencyMs, maxLatencyMs]; the floor keeps load factors meaningful. */
  minLatencyMs: 1,
  maxLatencyMs: 600_000,
  /** Consecutive failures after which a host is avoided. */
  failuresToAvoid: 3,
  /** First pause of an avoided host, ms; doubles each time it fails again after a pause. */
  avoidMs: 5_000,
  maxAvoidMs: 300_000,
  /** Cost factor per consecutive failure below the avoid threshold: a host that just failed is tried after equal ones. */
  failureWeight: 1,
  /** Weight of stake: cost is divided by 1 + w·log2(stake ratio), the ratio capped at 16 (w 0.25: 16x the minimum stake = 2x cheaper). */
  stakeWeight: 0.25,
  /** Cost factor weights: cost = latency × (1 + load·w + queue·w + inFlight·w) × (1 + failures·w) / stake factor. */
  loadWeight: 1,
  queueWeight: 1,
  inFlightWeight: 1,
  /** Advertised numbers are clamped to these; a value that is not a number counts as the maximum (a broken advert ranks last). */
  maxLoad: 64,
  maxQueueDepth: 10_000,
  /**
   * Hosts whose costs are within this fraction of each other are ordered at random, so equal hosts
   * get equal shares; hosts further apart are ordered by cost.
   */
  tieSpread: 0.25,
  /** At most this many hosts are tracked; the least recently seen idle host is forgotten first. */
  maxTrackedHosts: 1_024,
  /** `prune()` forgets hosts not seen (ranked or reported on) for this long, ms. */
  forgetAfterMs: 600_000,
  /** Reports about peer ids longer than this are ignored (a libp2p peer id string is ~52 characters). */
  maxPeerIdLength: 128,
  /** A failure reason is kept cut to this many characters. */
  maxReasonLength: 200
} as const

export type RoutingSettings = { -readonly [K in keyof typeof ROUTING_DEFAULTS]: number }

export interface RouterInit extends Partial<RoutingSettings> {
  /** Milliseconds on any monotonic-enough scale (Date.now, performance.now, a test clock). */
  now: () => number
  /** Uniform in [0, 1), like Math.random; a seeded source makes rankings replayable. */
  random: () => number
}

/** A host that could serve the request, with the figures of its latest gossip advert. */
export interface HostCandidate {
  peerId: string
  /** Jobs running / capacity, 0..1 (above 1 when overloaded). */
  load: number
  /** Jobs waiting in the host's queue. */
  queueDepth: number
  /** Price multiplier the host asks, 1 = base. Not used for ranking yet. */
  priceMultiplier?: number
  /** The host's stake on chain over the minimum host stake (1 = the minimum); more ranks it a little better. */
  stakeRatio?: number
}

/** What the router knows about one host, for `/mesh/routing` and logs. */
export interface HostStats {
  peerId: string
  /** EWMA of the observed latencies, ms; null before the first sample. */
  latencyMs: number | null
  /** The latency ranking uses now: the EWMA relaxed toward the initial estimate by the time since the last sample. */
  estimateMs: number
  samples: number
  /** Requests sent by this edge and not yet finished. */
  inFlight: number
  consecutiveFailures: number
  /** While the clock is before this, the host is ranked after all others; null when not avoided. */
  avoidedUntil: number | null
  /** Length of the latest pause, ms (0 after a success). */
  backoffMs: number
  lastFailure: string | null
  /** When the host was last ranked or reported on. */
  lastSeen: number
}

interface HostEntry {
  ewma: number | null
  lastSampleAt: number
  samples: number
  inFlight: number
  failures: number
  avoidedUntil: number
  backoffMs: number
  lastFailure: string | null
  lastSeen: number
}

const POSITIVE = 'a finite number above 0'

function checkSettings(init: RouterInit): RoutingSettings {
  const s: RoutingSettings = { ...ROUTING_DEFAULTS }
  for (const key of Object.keys(ROUTING_DEFAULTS) as Array<keyof RoutingSettings>) {
    const value = init[key]
    if (value !== undefined) s[key] = value
  }
  const positive: Array<keyof RoutingSettings> = [
    'initialLatencyMs',
    'latencyHalfLifeMs',
    'minLatencyMs',
    'maxLatencyMs',
    'avoidMs',
    'maxAvoidMs',
    'forgetAfterMs',
    'maxLoad',
    'maxQueueDepth'
  ]
  for (const key of positive) {
    if (!Number.isFinite(s[key]) || s[key] <= 0) throw new RouterConfigError(key, s[key], POSITIVE)
  }
  const nonNegative: Array<keyof RoutingSettings> = [
    'failureWeight',
    'loadWeight',
    'queueWeight',
    'inFlightWeight',
    'tieSpread',
    'stakeWeight'
  ]
  for (const key of nonNegative) {
    if (!Number.isFinite(s[key]) || s[key] < 0) throw new RouterConfigError(key, s[key], 'a finite number of 0 or more')
  }
  const counts: Array<keyof RoutingSettings> = ['failuresToAvoid', 'maxTrackedHosts', 'maxPeerIdLength', 'maxReasonLength']
  for (const key of counts) {
    if (!Number.isSafeInteger(s[key]) || s[key] < 1) throw new RouterConfigError(key, s[key], 'a whole number of 1 or more')
  }
  if (!(s.ewmaAlpha > 0 && s.ewmaAlpha <= 1)) throw new RouterConfigError('ewmaAlpha', s.ewmaAlpha, 'a number in (0, 1]')
  if (s.maxLatencyMs < s.minLatencyMs) {
    throw new RouterConfigError('maxLatencyMs', s.maxLatencyMs, `at least minLatencyMs (${s.minLatencyMs})`)
  }
  if (s.maxAvoidMs < s.avoidMs) throw new RouterConfigError('maxAvoidMs', s.maxAvoidMs, `at least avoidMs (${s.avoidMs})`)
  if (typeof init.now !== 'function' || typeof init.random !== 'function') {
    throw new RouterConfigError('now/random', typeof init.now, 'a clock function and a random function')
  }
  return s
}

/** `x` clamped to [0, max]; anything that is not a number counts as `max` (the worst case). */
function sane(x: unknown, max: number): number {
  if (typeof x !== 'number' || Number.isNaN(x)) return max
  if (x <= 0) return 0
  return Math.min(x, max)
}

/**
 * Ranks hosts for the edge by expected cost and keeps the per-host statistics that cost comes from.
 *
 * cost = latency estimate × (1 + load + queueDepth + local in-flight) × (1 + consecutive failures),
 * each term weighted by its `ROUTING_DEFAULTS` weight. Ties within `tieSpread` are broken at random
 * so equal hosts share the work; the local in-flight count spreads a burst before adverts catch up.
 *
 * The edge calls `rank` for a request, `started` when it sends to a host, `observeLatency` and
 * `succeeded` when the host answers (first token), `failed` when it does not, and `finished` when
 * the request ends either way.
 */
export class Router {
  readonly settings: Readonly<RoutingSettings>
  private readonly now: () => number
  private readonly random: () => number
  /** Map order is least recently seen first: `touch` moves an entry to the end. */
  private readonly hosts = new Map<string, HostEntry>()

  constructor(init: RouterInit) {
    this.settings = checkSettings(init)
    this.now = init.now
    this.random = init.random
  }

  /**
   * Peer ids in the order to try them: healthy hosts by cost (near-equal ones shuffled), then
   * avoided hosts, soonest back first. Duplicate ids collapse to their first occurrence. Always a
   * permutation of the distinct input ids; never throws on odd numbers in an advert.
   */
  rank(candidates: readonly HostCandidate[]): string[] {
    const now = this.clock()
    const healthy: Array<{ peerId: string; key: number; index: number }> = []
    const avoided: Array<{ peerId: string; until: number; cost: number; index: number }> = []
    const seen = new Set<string>()
    for (const c of candidates) {
      if (seen.has(c.peerId)) continue
      seen.add(c.peerId)
      const entry = this.hosts.get(c.peerId)
      if (entry != null) this.touch(c.peerId, entry, now)
      const cost = this.costOf(c, entry, now)
      if (entry != null && entry.avoidedUntil > now) {
        avoided.push({ peerId: c.peerId, until: entry.avoidedUntil, cost, index: seen.size })
      } else {
        healthy.push({ peerId: c.peerId, key: cost * (1 + this.settings.tieSpread * this.uniform()), index: seen.size })
      }
    }
    healthy.sort((a, b) => a.key - b.key || a.index - b.index)
    avoided.sort((a, b) => a.until - b.until || a.cost - b.cost || a.index - b.index)
    return [...healthy.map((h) => h.peerId), ...avoided.map((a) => a.peerId)]
  }

  /** The expected cost `rank` orders by (before the random tie-break); lower is better. */
  cost(candidate: HostCandidate): number {
    return this.costOf(candidate, this.hosts.get(candidate.peerId), this.clock())
  }

  /** A request was sent to `peerId`. */
  started(peerId: string): void {
    const entry = this.entry(peerId)
    if (entry != null) entry.inFlight++
  }

  /** A request to `peerId` ended (answered, failed or cancelled). */
  finished(peerId: string): void {
    const entry = this.entry(peerId)
    if (entry != null && entry.inFlight > 0) entry.inFlight--
  }

  /** A measured latency (time to first token or to an accepted reply), folded into the host's EWMA. Non-numbers and negatives are ignored. */
  observeLatency(peerId: string, ms: number): void {
    if (typeof ms !== 'number' || Number.isNaN(ms) || ms < 0) return
    const entry = this.entry(peerId)
    if (entry == null) return
    const sample = this.clampLatency(ms)
    const a = this.settings.ewmaAlpha
    entry.ewma = entry.ewma == null ? sample : this.clampLatency(a * sample + (1 - a) * entry.ewma)
    entry.samples++
    entry.lastSampleAt = this.clock()
  }

  /** The host answered: its failure count and backoff reset, and it is no longer avoided. */
  succeeded(peerId: string): void {
    const entry = this.entry(peerId)
    if (entry == null) return
    entry.failures = 0
    entry.backoffMs = 0
    entry.avoidedUntil = 0
  }

  /**
   * A failure before the first token (connect error, refusal, timeout). At `failuresToAvoid`
   * consecutive failures the host is avoided for `avoidMs`; one more failure after that pause
   * avoids it for twice as long, up to `maxAvoidMs`. Failures reported while the host is avoided
   * (requests sent before the pause) count but do not extend it.
   */
  failed(peerId: string, reason: string): void {
    const entry = this.entry(peerId)
    if (entry == null) return
    const now = this.clock()
    entry.failures++
    entry.lastFailure = String(reason).slice(0, this.settings.maxReasonLength)
    if (entry.avoidedUntil > now || entry.failures < this.settings.failuresToAvoid) return
    entry.backoffMs = entry.backoffMs === 0 ? this.settings.avoidMs : Math.min(entry.backoffMs * 2, this.settings.maxAvoidMs)
    entry.avoidedUntil = now + entry.backoffMs
  }

  /** What the router knows about each tracked host, least recently seen first. */
  snapshot(): HostStats[] {
    const now = this.clock()
    return [...this.hosts].map(([peerId, e]) => ({
      peerId,
      latencyMs: e.ewma,
      estimateMs: this.estimate(e, now),
      samples: e.samples,
      inFlight: e.inFlight,
      consecutiveFailures: e.failures,
      avoidedUntil: e.avoidedUntil > now ? e.avoidedUntil : null,
      backoffMs: e.backoffMs,
      lastFailure: e.lastFailure,
      lastSeen: e.lastSeen
    }))
  }

  /** How many hosts are tracked (at most `maxTrackedHosts`). */
  get size(): number {
    return this.hosts.size
  }

  /**
   * Forgets hosts not seen for `olderThanMs` (default `forgetAfterMs`) that have nothing in flight
   * and are not avoided; returns the forgotten peer ids.
   */
  prune(olderThanMs: number = this.settings.forgetAfterMs): string[] {
    const now = this.clock()
    const limit = Number.isNaN(olderThanMs) ? this.settings.forgetAfterMs : Math.max(0, olderThanMs)
    const forgotten: string[] = []
    for (const [peerId, e] of this.hosts) {
      if (now - e.lastSeen >= limit && e.inFlight === 0 && e.avoidedUntil <= now) forgotten.push(peerId)
    }
    for (const peerId of forgotten) this.hosts.delete(peerId)
    return forgotten
  }

  private costOf(c: HostCandidate, entry: HostEntry | undefined, now: number): number {
    const s = this.settings
    const latency = entry == null ? this.clampLatency(s.initialLatencyMs) : this.estimate(entry, now)
    const busy =
      1 +
      s.loadWeight * sane(c.load, s.maxLoad) +
      s.queueWeight * sane(c.queueDepth, s.maxQueueDepth) +
      s.inFlightWeight * (entry?.inFlight ?? 0)
    // more stake at risk, a cheaper host: cost / (1 + w·log2(stake / minimum stake)), at most 16x the minimum counted
    const ratio = typeof c.stakeRatio === 'number' && c.stakeRatio > 1 ? Math.min(16, c.stakeRatio) : 1
    const stake = 1 + s.stakeWeight * Math.log2(ratio)
    return (latency * busy * (1 + s.failureWeight * (entry?.failures ?? 0))) / stake
  }

  /** The EWMA relaxed toward the initial estimate by the time since the last sample. */
  private estimate(e: HostEntry, now: number): number {
    const prior = this.clampLatency(this.settings.initialLatencyMs)
    if (e.ewma == null) return prior
    const idle = Math.max(0, now - e.lastSampleAt)
    const keep = 2 ** (-idle / this.settings.latencyHalfLifeMs)
    return this.clampLatency(prior + (e.ewma - prior) * keep)
  }

  private clampLatency(ms: number): number {
    return Math.min(this.settings.maxLatencyMs, Math.max(this.settings.minLatencyMs, ms))
  }

  /** The injected clock, with a non-number read as 0 so bookkeeping never turns NaN. */
  private clock(): number {
    const t = this.now()
    return Number.isFinite(t) ? t : 0
  }

  private uniform(): number {
    const r = this.random()
    return Number.isFinite(r) ? Math.min(1, Math.max(0, r)) : 0
  }

  /** The entry for `peerId`, created if needed (forgetting the least recently seen idle host when full); undefined for an oversized id. */
  private entry(peerId: string): HostEntry | undefined {
    if (typeof peerId !== 'string' || peerId.length > this.settings.maxPeerIdLength) return undefined
    const now = this.clock()
    const found = this.hosts.get(peerId)
    if (found != null) {
      this.touch(peerId, found, now)
      return found
    }
    if (this.hosts.size >= this.settings.maxTrackedHosts) this.evictOne(now)
    const entry: HostEntry = {
      ewma: null,
      lastSampleAt: now,
      samples: 0,
      inFlight: 0,
      failures: 0,
      avoidedUntil: 0,
      backoffMs: 0,
      lastFailure: null,
      lastSeen: now
    }
    this.hosts.set(peerId, entry)
    return entry
  }

  private touch(peerId: string, entry: HostEntry, now: number): void {
    entry.lastSeen = now
    this.hosts.delete(peerId)
    this.hosts.set(peerId, entry)
  }

  /** Forgets the least recently seen host with nothing in flight and no pause running, else the least recently seen. */
  private evictOne(now: number): void {
    let victim: string | undefined
    for (const [peerId, e] of this.hosts) {
      victim ??= peerId
      if (e.inFlight === 0 && e.avoidedUntil <= now) {
        victim = peerId
        break
      }
    }
    if (victim !== undefined) this.hosts.delete(victim)
  }
}
