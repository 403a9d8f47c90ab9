import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'
import type { Logger } from 'pino'
import type { MeshLibp2p } from '../p2p/index.ts'
import { LIMITS } from '../params/index.ts'
import { ModelFetchBusyError, ModelProviderError, ModelStoreStoppedError } from './errors.ts'
import { ModelExchange } from './model-exchange.ts'
import type { StoredModel } from './model-index.ts'
import { type FetchProgress, ModelStore, parseModelCid } from './model-store.ts'

export const MODEL_SERVICE_DEFAULTS = {
  /** How often every stored model is announced again (DHT provider records live 48 h; kad-dht also re-provides at 24 h). */
  provideIntervalMs: 6 * 60 * 60_000,
  /** After a peer connects, how long to wait (for identify to add it to the DHT routing table) before announcing what is due. */
  announceAfterConnectMs: 1_000,
  /** When an announcement failed or reached no peer, how soon it is tried again. */
  provideRetryMs: 30_000,
  /** Longest one DHT provide may run. */
  provideTimeoutMs: LIMITS.dhtQueryTimeoutMs,
  /** How often the index file is checked for models another process (`llmesh model add`) listed. */
  indexPollMs: 5_000,
  /** Longest a DHT provider lookup for a fetch may run. */
  findProvidersTimeoutMs: LIMITS.dhtQueryTimeoutMs,
  /** Once one provider is found, how much longer the lookup may run to find others. */
  providerGraceMs: 2_000,
  /** Providers taken from one lookup. */
  maxProviders: 20,
  /** Longest wait to connect to one provider. */
  dialTimeoutMs: 10_000,
  /** Models being fetched (or queued: the store adopts one at a time) at once. */
  maxFetches: 8,
  /** Callers waiting on one model's fetch. */
  maxCallersPerFetch: 64
} as const

export interface ModelServiceComponents {
  libp2p: MeshLibp2p
  log: Logger
}

export interface ModelServiceInit {
  /** The store's directory, `modelStoreDir(home)`. */
  dir: string
  provideIntervalMs?: number
  provideRetryMs?: number
  indexPollMs?: number
  findProvidersTimeoutMs?: number
  /** Longest wait for one block from peers (ModelExchange's default otherwise). */
  blockTimeoutMs?: number
}

/** Where a fetch is: looking up providers, connecting to them, or moving blocks (with `FetchProgress`'s counts). */
export interface ModelFetchProgress extends FetchProgress {
  phase: 'finding-providers' | 'connecting' | 'fetching'
  /** Providers found on the DHT (then: reached). */
  providers: number
}

export interface ModelServiceFetchOptions {
  signal?: AbortSignal
  onProgress?: (progress: ModelFetchProgress) => void
}

interface FetchJob {
  promise: Promise<StoredModel>
  controller: AbortController
  listeners: Set<(progress: ModelFetchProgress) => void>
  callers: number
  last: ModelFetchProgress | undefined
}

interface ProvideState {
  /** When the model is next announced (ms since the epoch); 0 = as soon as the node has peers. */
  nextAt: number
}

const EMPTY_PROGRESS: FetchProgress = { blocksSeen: 0, blocksPresent: 0, blocksFetched: 0, bytesFetched: 0, bytesPresent: 0, fileSize: 0 }

/**
 * Model distribution inside a running node: the node's model store, served over bitswap
 * (`ModelExchange`), every stored model announced on the DHT (provider record on its root CID,
 * renewed periodically, in the background), and `fetch(cid)`, which finds providers through the
 * DHT, connects to them, fetches the DAG over bitswap into the store (hash-checked) and announces
 * it. One fetch runs per CID; a second caller joins it. Models another process lists in the same
 * store (`llmesh model add` while the node runs) are picked up from the index file.
 */
export class ModelService {
  private readonly libp2p: MeshLibp2p
  private readonly log: Logger
  private readonly dir: string
  private readonly provideIntervalMs: number
  private readonly provideRetryMs: number
  private readonly indexPollMs: number
  private readonly findProvidersTimeoutMs: number
  private readonly blockTimeoutMs: number | undefined
  private _store: ModelStore | undefined
  private exchange: ModelExchange | undefined
  private stopController = new AbortController()
  private readonly jobs = new Map<string, FetchJob>()
  private readonly provideState = new Map<string, ProvideState>()
  private timer: ReturnType<typeof setTimeout> | undefined
  private connectTimer: ReturnType<typeof setTimeout> | undefined
  private tick: Promise<void> | undefined
  private tickAgain = false
  private readonly onPeerConnect = (): void => {
    // a new peer joins the DHT routing table once identify has run: announce what is due a moment later
    if (this.connectTimer != null || ![...this.provideState.values()].some((s) => s.nextAt <= Date.now())) return
    this.connectTimer = setTimeout(() => {
      this.connectTimer = undefined
      this.kick()
    }, MODEL_SERVICE_DEFAULTS.announceAfterConnectMs)
    this.connectTimer.unref?.()
  }

  constructor(components: ModelServiceComponents, init: ModelServiceInit) {
    this.libp2p = components.libp2p
    this.log = components.log.child({ component: 'models' })
    this.dir = init.dir
    this.provideIntervalMs = init.provideIntervalMs ?? MODEL_SERVICE_DEFAULTS.provideIntervalMs
    this.provideRetryMs = init.provideRetryMs ?? MODEL_SERVICE_DEFAULTS.provideRetryMs
    this.indexPollMs = init.indexPollMs ?? MODEL_SERVICE_DEFAULTS.indexPollMs
    this.findProvidersTimeoutMs = init.findProvidersTimeoutMs ?? MODEL_SERVICE_DEFAULTS.findProvidersTimeoutMs
    this.blockTimeoutMs = init.blockTimeoutMs
  }

  /** The node's model store (for the inference engine: `store.path(cid)`). */
  get store(): ModelStore {
    if (this._store == null) throw new ModelStoreStoppedError()
    return this._store
  }

  /** Opens the store and the exchange; announcing the stored models starts in the background. */
  async start(): Promise<void> {
    if (this._store != null) return
    const store = new ModelStore({ dir: this.dir })
    await store.start()
    const exchange = new ModelExchange({ libp2p: this.libp2p, store }, { blockTimeoutMs: this.blockTimeoutMs })
    try {
      await exchange.start()
    } catch (err) {
      await store.stop()
      throw err
    }
    this._store = store
    this.exchange = exchange
    this.stopController = new AbortController()
    this.libp2p.addEventListener('peer:connect', this.onPeerConnect)
    this.log.info({ models: store.list().length, dir: store.paths.dir }, 'model store opened')
    this.kick()
  }

  /** Aborts running fetches and announcements, then closes the exchange and the store. */
  async stop(): Promise<void> {
    const store = this._store
    if (store == null) return
    this.libp2p.removeEventListener('peer:connect', this.onPeerConnect)
    this.stopController.abort(new ModelStoreStoppedError())
    clearTimeout(this.timer)
    clearTimeout(this.connectTimer)
    this.timer = undefined
    this.connectTimer = undefined
    await Promise.allSettled([...this.jobs.values()].map((job) => job.promise))
    await this.tick?.catch(() => {})
    this._store = undefined
    await this.exchange?.stop()
    this.exchange = undefined
    await store.stop()
    this.provideState.clear()
  }

  /** The stored models, oldest first, including those another process listed since the last look. */
  async list(): Promise<StoredModel[]> {
    const store = this.store
    await store.refresh()
    return store.list()
  }

  /**
   * The model `cid` in this node's store, fetched from the peers the DHT lists as its providers if
   * it is not stored yet (only the blocks the store lacks cross the network; every block and the
   * whole file are checked), then announced. A caller fetching a CID that is already being
   * fetched joins that fetch; the fetch is abandoned when every caller has aborted.
   */
  async fetch(cid: string | CID, options: ModelServiceFetchOptions = {}): Promise<StoredModel> {
    const root = parseModelCid(cid)
    const store = this.store
    options.signal?.throwIfAborted()
    await store.refresh()
    const stored = store.get(root)
    if (stored != null) return stored
    const key = root.toString()
    let job = this.jobs.get(key)
    if (job == null) {
      if (this.jobs.size >= MODEL_SERVICE_DEFAULTS.maxFetches) {
        throw new ModelFetchBusyError('MODEL_FETCH_BUSY', `this node is already fetching ${this.jobs.size} models`, {
          hint: 'try again when one of them is done'
        })
      }
      job = this.startJob(root)
    } else if (job.callers >= MODEL_SERVICE_DEFAULTS.maxCallersPerFetch) {
      throw new ModelFetchBusyError('MODEL_FETCH_BUSY', `${job.callers} callers already wait for model ${key}`, {
        hint: 'try again when the fetch is done'
      })
    }
    return this.join(job, options)
  }

  private startJob(root: CID): FetchJob {
    const controller = new AbortController()
    const job: FetchJob = { promise: Promise.resolve() as never, controller, listeners: new Set(), callers: 0, last: undefined }
    const emit = (progress: ModelFetchProgress): void => {
      job.last = progress
      for (const listener of job.listeners) {
        try {
          listener(progress)
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'a fetch progress listener failed')
        }
      }
    }
    const key = root.toString()
    job.promise = this.runFetch(root, AbortSignal.any([controller.signal, this.stopController.signal]), emit).finally(() =>
      this.jobs.delete(key)
    )
    // every caller may have left; the outcome is logged, never unhandled
    job.promise.catch(() => {})
    this.jobs.set(key, job)
    return job
  }

  private join(job: FetchJob, options: ModelServiceFetchOptions): Promise<StoredModel> {
    const listener = options.onProgress
    job.callers++
    if (listener != null) {
      job.listeners.add(listener)
      if (job.last != null) listener(job.last)
    }
    return new Promise<StoredModel>((resolve, reject) => {
      const signal = options.signal
      let left = false
      const leave = (): void => {
        if (left) return
        left = true
        job.callers--
        if (listener != null) job.listeners.delete(listener)
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        leave()
        if (job.callers === 0) job.controller.abort(signal?.reason)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      if (signal?.aborted === true) onAbort()
      job.promise.then(
        (model) => {
          leave()
          resolve(model)
        },
        (err: unknown) => {
          leave()
          reject(err)
        }
      )
    })
  }

  private async runFetch(root: CID, signal: AbortSignal, emit: (p: ModelFetchProgress) => void): Promise<StoredModel> {
    const key = root.toString()
    const started = Date.now()
    emit({ phase: 'finding-providers', providers: 0, ...EMPTY_PROGRESS })
    try {
      const found = await this.findProviders(root, signal)
      if (found.length === 0) {
        throw new ModelProviderError(
          'MODEL_NO_PROVIDER',
          key,
          0,
          `no peer provides model ${key} (the DHT lists no provider for it)`,
          'check the CID; a node holding the model must be running and connected to the mesh (it announces its models a few seconds after it starts)'
        )
      }
      emit({ phase: 'connecting', providers: found.length, ...EMPTY_PROGRESS })
      const reached = await this.dialProviders(found, signal)
      if (reached.length === 0) {
        throw new ModelProviderError(
          'MODEL_PROVIDERS_UNREACHABLE',
          key,
          found.length,
          `none of the ${found.length} peers providing model ${key} could be reached`,
          'they may be offline or behind NAT; try again later'
        )
      }
      const exchange = this.exchange
      if (exchange == null) throw new ModelStoreStoppedError()
      const model = await exchange.fetch(root, {
        providers: reached,
        signal,
        onProgress: (p) => emit({ phase: 'fetching', providers: reached.length, ...p })
      })
      this.log.info(
        { cid: key, size: model.size, blocks: model.blocks, providers: reached.length, ms: Date.now() - started },
        'model fetched from peers'
      )
      this.provideState.set(key, { nextAt: 0 })
      this.kick()
      return model
    } catch (err) {
      if (signal.aborted) this.log.info({ cid: key }, 'model fetch abandoned')
      else this.log.warn({ cid: key, err: (err as Error).message }, 'model fetch failed')
      throw err
    }
  }

  /** Providers of `root` on the DHT (not this node), at most `maxProviders`. */
  private async findProviders(root: CID, signal: AbortSignal): Promise<Array<{ id: PeerId; multiaddrs: Multiaddr[] }>> {
    const self = this.libp2p.peerId
    const found = new Map<string, { id: PeerId; multiaddrs: Multiaddr[] }>()
    const enough = new AbortController()
    let grace: ReturnType<typeof setTimeout> | undefined
    try {
      const lookup = AbortSignal.any([signal, enough.signal, AbortSignal.timeout(this.findProvidersTimeoutMs)])
      for await (const peer of this.libp2p.contentRouting.findProviders(root, { signal: lookup })) {
        if (peer.id.equals(self)) continue
        const previous = found.get(peer.id.toString())
        found.set(peer.id.toString(), { id: peer.id, multiaddrs: [...(previous?.multiaddrs ?? []), ...peer.multiaddrs] })
        if (found.size >= MODEL_SERVICE_DEFAULTS.maxProviders) break
        grace ??= setTimeout(() => enough.abort(), MODEL_SERVICE_DEFAULTS.providerGraceMs)
      }
    } catch (err) {
      signal.throwIfAborted()
      // "none found", "lookup timed out" and "enough found" all mean: these are the providers
      if (!['NotFoundError', 'AbortError', 'TimeoutError'].includes((err as Error).name)) throw err
    } finally {
      clearTimeout(grace)
    }
    return [...found.values()]
  }

  /** Connects to the providers (all at once; bounded by `maxProviders`); returns those reached. */
  private async dialProviders(providers: Array<{ id: PeerId; multiaddrs: Multiaddr[] }>, signal: AbortSignal): Promise<PeerId[]> {
    const results = await Promise.allSettled(
      providers.map(async ({ id, multiaddrs }) => {
        if (multiaddrs.length > 0) await this.libp2p.peerStore.merge(id, { multiaddrs })
        await this.libp2p.dial(id, { signal: AbortSignal.any([signal, AbortSignal.timeout(MODEL_SERVICE_DEFAULTS.dialTimeoutMs)]) })
        return id
      })
    )
    signal.throwIfAborted()
    const reached: PeerId[] = []
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') reached.push(r.value)
      else this.log.debug({ peer: providers[i]?.id.toString(), err: (r.reason as Error).message }, 'model provider unreachable')
    }
    return reached
  }

  /** Puts a provider record for `cid` on the DHT; returns how many peers took it. */
  private async announce(cid: string, stop: AbortSignal): Promise<number> {
    let peers = 0
    const signal = AbortSignal.any([stop, AbortSignal.timeout(MODEL_SERVICE_DEFAULTS.provideTimeoutMs)])
    for await (const event of this.libp2p.services.dht.provide(parseModelCid(cid), { signal })) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') peers++
    }
    return peers
  }

  /** Runs an announcement round now (or right after the running one). */
  private kick(): void {
    if (this._store == null || this.stopController.signal.aborted) return
    if (this.tick != null) {
      this.tickAgain = true
      return
    }
    clearTimeout(this.timer)
    this.timer = undefined
    this.tick = this.provideRound()
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'model announcement round failed'))
      .finally(() => {
        this.tick = undefined
        if (this.tickAgain) {
          this.tickAgain = false
          this.kick()
        } else {
          this.schedule()
        }
      })
  }

  private schedule(): void {
    if (this._store == null || this.stopController.signal.aborted) return
    const now = Date.now()
    let due = now + this.indexPollMs
    // without peers nothing can be announced; the index is still watched, and a peer:connect calls sooner
    if (this.libp2p.getConnections().length > 0) for (const state of this.provideState.values()) due = Math.min(due, state.nextAt)
    this.timer = setTimeout(() => this.kick(), Math.max(0, due - now))
    this.timer.unref?.()
  }

  /**
   * Picks up models another process listed, forgets removed ones, and announces (one at a time)
   * every model whose announcement is due, if the node has peers to announce to.
   */
  private async provideRound(): Promise<void> {
    const store = this._store
    if (store == null) return
    await store.refresh()
    const stored = new Set(store.list().map((m) => m.cid))
    for (const cid of stored) if (!this.provideState.has(cid)) this.provideState.set(cid, { nextAt: 0 })
    for (const cid of this.provideState.keys()) if (!stored.has(cid)) this.provideState.delete(cid)
    if (this.libp2p.getConnections().length === 0) return // nobody to announce to; a peer:connect brings us back
    const stop = this.stopController.signal
    for (const [cid, state] of this.provideState) {
      if (stop.aborted) return
      if (state.nextAt > Date.now()) continue
      try {
        const peers = await this.announce(cid, stop)
        // a provide that reached nobody (the routing table was still empty) is not an announcement
        state.nextAt = Date.now() + (peers > 0 ? this.provideIntervalMs : this.provideRetryMs)
        this.log.debug({ cid, peers }, 'model announced on the DHT')
      } catch (err) {
        if (stop.aborted) return
        state.nextAt = Date.now() + this.provideRetryMs
        this.log.warn({ cid, err: (err as Error).message }, 'could not announce a model on the DHT; will retry')
      }
    }
  }
}
