import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { LlmeshError } from '../errors/index.ts'
import {
  type HostAdverts,
  HostError,
  type HostSession,
  type HostSessions,
  type JobOutcome,
  jobFromRequest,
  type KnownHost,
  type NormalizedRequest
} from '../inference/index.ts'
import { EDGE_DEFAULTS } from '../params/index.ts'
import { type EdgePayments, PaymentError } from '../payments/index.ts'
import type { HostCandidate, HostStats, Router } from '../routing/index.ts'

/** A model some live host on the mesh serves. */
export interface MeshModel {
  cid: string
  /** The name its hosts give it (the most common one, if they differ). */
  name: string
  /** Peer ids of the hosts advertising it. */
  hosts: string[]
}

export type EdgeErrorCode = 'UNKNOWN_MODEL' | 'NO_HOST' | 'ALL_HOSTS_BUSY' | 'ALL_HOSTS_FAILED'

/** The edge could not find or reach a host for a request. */
export class EdgeError extends LlmeshError<EdgeErrorCode> {}

export interface MeshGeneration extends JobOutcome {
  /** Peer id of the host that served the request. */
  host: string
  /** CID of the model that ran. */
  model: string
  /** Hosts tried before this one succeeded (failover before the first token). */
  failedHosts: string[]
}

export interface MeshInferenceComponents {
  adverts: HostAdverts
  sessions: HostSessions
  router: Router
  log: Logger
  now: () => number
  /** DHT lookup of peers providing a CID: hosts whose advert this edge missed. */
  findProviders?: (cid: string) => Promise<string[]>
  /** Pays hosts for priced models (needs the chain); none: jobs go unpaid. */
  payments?: EdgePayments
  /** A host's stake and the minimum to be routed to (from the chain); none: no stake rule. */
  hostStake?: (peerId: string) => { stake: bigint; minimum: bigint }
}

export interface GenerateCallbacks {
  signal?: AbortSignal
  /** Called once with the host that produced the first token (before `onToken`), or that finished with none. */
  onHost?: (host: string) => void
  onToken?: (text: string) => void
}

/**
 * The edge's way into the mesh: resolves a model name or CID to the hosts that serve it, picks
 * one with the router, runs the job over a sealed session, and fails over to the next host if
 * one fails before its first token.
 */
export class MeshInference {
  private readonly c: MeshInferenceComponents
  private readonly maxAttempts: number
  private readonly firstTokenTimeoutMs: number
  private readonly jobIds = new JobIds()

  constructor(components: MeshInferenceComponents, init: { maxAttempts?: number; firstTokenTimeoutMs?: number } = {}) {
    this.c = components
    this.maxAttempts = init.maxAttempts ?? EDGE_DEFAULTS.maxAttempts
    this.firstTokenTimeoutMs = init.firstTokenTimeoutMs ?? EDGE_DEFAULTS.firstTokenTimeoutMs
  }

  /** Models served by live hosts, by CID. */
  models(): MeshModel[] {
    const byCid = new Map<string, { names: Map<string, number>; hosts: string[] }>()
    for (const h of this.c.adverts.hosts()) {
      for (const m of h.advert.models) {
        let entry = byCid.get(m.cid)
        if (entry === undefined) {
          entry = { names: new Map(), hosts: [] }
          byCid.set(m.cid, entry)
        }
        entry.hosts.push(h.peerId)
        if (m.name !== '') entry.names.set(m.name, (entry.names.get(m.name) ?? 0) + 1)
      }
    }
    return [...byCid]
      .map(([cid, e]) => ({
        cid,
        name: [...e.names].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0] ?? cid,
        hosts: e.hosts
      }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.cid.localeCompare(b.cid))
  }

  /** What this edge knows of each live host: its advert and the router's measurements. */
  hosts(): Array<{
    peerId: string
    models: string[]
    active: number
    capacity: number
    priceBps: number
    advertAgeMs: number
    routing: HostStats | null
  }> {
    const stats = new Map(this.c.router.snapshot().map((s) => [s.peerId, s]))
    const now = this.c.now()
    return this.c.adverts.hosts().map((h) => ({
      peerId: h.peerId,
      models: h.advert.models.map((m) => m.cid),
      active: h.advert.active,
      capacity: h.advert.capacity,
      priceBps: h.advert.priceBps,
      advertAgeMs: Math.max(0, now - h.receivedAt),
      routing: stats.get(h.peerId) ?? null
    }))
  }

  /** The model a request names, by CID or by name (a name two models share is ambiguous: use the CID). */
  resolve(model: string): MeshModel {
    const models = this.models()
    const byCid = models.find((m) => m.cid === model)
    if (byCid != null) return byCid
    const named = models.filter((m) => m.name === model)
    if (named.length === 1 && named[0] != null) return named[0]
    if (named.length > 1) {
      throw new EdgeError('UNKNOWN_MODEL', `${named.length} models are called ${model}: ${named.map((m) => m.cid).join(', ')}`, {
        hint: 'ask for one of them by its CID'
      })
    }
    if (looksLikeCid(model)) return { cid: model, name: model, hosts: [] }
    throw new EdgeError('UNKNOWN_MODEL', `no host on the mesh serves a model called ${model}`, {
      hint: 'GET /v1/models lists the models hosts serve; a model can also be named by its CID'
    })
  }

  /** Runs a request on the mesh. Throws {@link EdgeError} when no host can serve it, {@link HostError} for a request the host refused as invalid. */
  async generate(request: NormalizedRequest, callbacks: GenerateCallbacks = {}): Promise<MeshGeneration> {
    // a request that names a CID some live host advertises (the usual case) needs no model list
    const advertised = this.c.adverts.hostsFor(request.model)
    const model = advertised.length > 0 ? { cid: request.model } : this.resolve(request.model)
    const job = jobFromRequest(this.jobIds.next(), { ...request, model: model.cid })
    let hosts = advertised.length > 0 ? toCandidates(advertised) : this.candidates(model.cid)
    if (hosts.length === 0 && this.c.findProviders != null) {
      hosts = (await this.c.findProviders(model.cid).catch(() => [])).map((peerId) => ({ peerId, load: 0, queueDepth: 0 }))
    }
    const found = hosts.length
    hosts = this.staked(hosts)
    if (hosts.length === 0 && found > 0) {
      throw new EdgeError('NO_HOST', `${found} host(s) serve model ${model.cid}, but none has the minimum host stake`, {
        hint: 'a host becomes routable with: llmesh tx stake --role host --amount N'
      })
    }
    if (hosts.length === 0) {
      throw new EdgeError('NO_HOST', `no host serves model ${model.cid} right now`, {
        hint: 'start a node with the host role serving it, or wait for a host to advertise it'
      })
    }
    const router = this.c.router
    const failed: string[] = []
    const errors: HostError[] = []
    for (const host of router.rank(hosts).slice(0, this.maxAttempts)) {
      const startedAt = this.c.now()
      let first = true
      const onFirst = (): void => {
        if (!first) return
        first = false
        router.observeLatency(host, this.c.now() - startedAt)
        callbacks.onHost?.(host)
      }
      router.started(host)
      // this attempt ends if the caller gives up, or if the host sends nothing in time (a flag and the
      // job's cancel, not an AbortController per attempt: this runs once per request)
      let stopped = false
      let running: ReturnType<HostSession['start']> | undefined
      const stopAttempt = (): void => {
        stopped = true
        running?.cancel()
      }
      callbacks.signal?.addEventListener('abort', stopAttempt, { once: true })
      let silent = false
      const timer = setTimeout(() => {
        if (!first) return
        silent = true
        stopAttempt()
      }, this.firstTokenTimeoutMs)
      try {
        const session = await this.c.sessions.get(host)
        if (!session.models.has(model.cid)) throw new HostError('unknown_model', host, `host ${host} does not serve ${model.cid}`)
        if (this.c.payments != null && !this.c.payments.reconcile(host, session.claimedOwed)) {
          throw new HostError(
            'bad_host',
            host,
            `host ${host} says this edge owes it ${session.claimedOwed}, more than this edge can account for`
          )
        }
        const payment = this.c.payments?.prepare(host, model.cid, promptBytes(request), request.params.maxTokens)
        if (stopped) throw new HostError('cancelled', host, 'cancelled before it started')
        running = session.start(payment == null ? job : { ...job, voucher: payment.voucher }, (text) => {
          onFirst()
          callbacks.onToken?.(text)
        })
        const outcome = await running.outcome
        onFirst()
        router.succeeded(host)
        if (payment != null && this.c.payments != null) {
          // pay for this job at once, so the host can redeem all of it
          try {
            session.pay(outcome.id, this.c.payments.settle(host, payment, outcome.receipt.cost))
          } catch (err) {
            throw new HostError('bad_host', host, (err as Error).message, err)
          }
        }
        return { ...outcome, host, model: model.cid, failedHosts: failed }
      } catch (err) {
        if (err instanceof PaymentError) throw err
        const hostError = silent
          ? new HostError('timeout', host, `host ${host} sent no token within ${this.firstTokenTimeoutMs} ms`)
          : err instanceof HostError
            ? err
            : new HostError('failed', host, (err as Error).message, err)
        // a host that broke the protocol (e.g. a receipt that does not verify) is avoided, even after text went out
        if (!first && hostError.code === 'bad_host') router.failed(host, hostError.code)
        // once text went out, or when the request itself is at fault, another host cannot help
        if (!first || !hostError.retryable || callbacks.signal?.aborted === true) throw hostError
        // a provider that stores the model without serving it is no fault of the host's
        if (hostError.code !== 'unknown_model') router.failed(host, hostError.code)
        this.c.log.debug({ host, code: hostError.code, err: hostError.message }, 'host failed before its first token; trying the next')
        failed.push(host)
        errors.push(hostError)
      } finally {
        clearTimeout(timer)
        callbacks.signal?.removeEventListener('abort', stopAttempt)
        router.finished(host)
      }
    }
    if (errors.every((e) => e.code === 'unknown_model')) {
      throw new EdgeError('NO_HOST', `no host serves model ${model.cid} right now (${errors.length} peer(s) store it without serving it)`, {
        hint: 'start a node with the host role serving it, or wait for a host to advertise it'
      })
    }
    const busy = errors.every((e) => e.code === 'busy' || e.code === 'rate_limited')
    throw new EdgeError(
      busy ? 'ALL_HOSTS_BUSY' : 'ALL_HOSTS_FAILED',
      `${errors.length} host(s) of model ${model.cid} could not serve the request: ${errors.map((e) => `${e.host.slice(-8)}: ${e.message}`).join('; ')}`.slice(
        0,
        1000
      ),
      { hint: busy ? 'retry in a moment' : 'retry; hosts that keep failing are avoided for a while' }
    )
  }

  /** Only hosts with the minimum host stake are routed to (when the edge knows the chain), each with its stake ratio. */
  private staked(hosts: HostCandidate[]): HostCandidate[] {
    const stakeOf = this.c.hostStake
    if (stakeOf == null) return hosts
    return hosts.flatMap((h) => {
      const { stake, minimum } = stakeOf(h.peerId)
      if (stake < minimum || stake === 0n) return []
      return [{ ...h, stakeRatio: minimum > 0n ? Number((stake * 1_000n) / minimum) / 1_000 : 1 }]
    })
  }

  private candidates(cid: string): HostCandidate[] {
    return toCandidates(this.c.adverts.hostsFor(cid))
  }
}

function toCandidates(hosts: KnownHost[]): HostCandidate[] {
  return hosts.map((h) => ({
    peerId: h.peerId,
    load: h.advert.active / h.advert.capacity,
    queueDepth: Math.max(0, h.advert.active - h.advert.capacity),
    priceMultiplier: h.advert.priceBps / 10_000
  }))
}

/** Job ids: 16 random bytes in hex, cut from a pool refilled 4 KiB at a time (a `randomBytes` call per job cost more than the rest of the id). */
class JobIds {
  private pool = Buffer.alloc(0)
  private at = 0

  next(): string {
    if (this.at + JOB_ID_BYTES > this.pool.byteLength) {
      this.pool = randomBytes(JOB_ID_POOL_BYTES)
      this.at = 0
    }
    const id = this.pool.toString('hex', this.at, this.at + JOB_ID_BYTES)
    this.at += JOB_ID_BYTES
    return id
  }
}

const JOB_ID_BYTES = 16
const JOB_ID_POOL_BYTES = 4096

/** UTF-8 bytes of a request's prompt (or of its messages): the bound on its prompt tokens that prices it before it runs. */
function promptBytes(request: NormalizedRequest): number {
  const input = request.input
  if (input.prompt !== undefined) return Buffer.byteLength(input.prompt)
  return input.messages.reduce((n, m) => n + Buffer.byteLength(m.content) + 16, 0)
}

function looksLikeCid(s: string): boolean {
  return /^(bafy|bafk|Qm)[a-zA-Z0-9]{40,}$/.test(s)
}
