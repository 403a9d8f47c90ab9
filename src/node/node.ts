import { mkdir, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { PrivateKey } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import type { Logger } from 'pino'
import { deriveSealKeyPair, SignatureVerifier, type Signer, signerFromPrivateKey } from '../crypto/index.ts'
import { isSystemError, LlmeshError } from '../errors/index.ts'
import {
  EchoEngine,
  HostAdverts,
  type HostAdvertsInit,
  HostSessions,
  type InferenceEngine,
  InferenceHost,
  LlamaEngine
} from '../inference/index.ts'
import { ModelService, modelStoreDir } from '../models/index.ts'
import { connectBootstrapPeers, createMeshLibp2p, type KnownPeer, MeshGrowth, type MeshLibp2p, PresenceService } from '../p2p/index.ts'
import {
  DEFAULTS,
  EDGE_DEFAULTS,
  HOST_ADVERT_TOPIC,
  HOST_DEFAULTS,
  INFER_PROTOCOL,
  LIMITS,
  LOCAL_NETWORK,
  PRESENCE_TOPIC,
  type Role,
  VERSION
} from '../params/index.ts'
import { EdgePayments, HostPayments, hostBooksCodec } from '../payments/index.ts'
import { Router } from '../routing/index.ts'
import { DurableFile } from '../storage/index.ts'
import { ChainService, GenesisFileError } from './chain-service.ts'
import type { NodeConfig } from './config.ts'
import { type HomePaths, lockHome } from './home.ts'
import { MeshInference } from './mesh-inference.ts'
import { NodeMetrics } from './metrics.ts'

export class PortInUseError extends LlmeshError<'PORT_IN_USE'> {}

export interface NodeStatus {
  peerId: string
  version: string
  roles: Role[]
  addresses: string[]
  peers: string[]
  connections: number
  uptimeSeconds: number
  apiUrl: string | null
  /** Height of the last committed block, or null if this node runs no chain. */
  height: number | null
  /** CIDs of the models this node serves as a host (empty if it is not one). */
  serving: string[]
}

export interface LlmeshNodeInit {
  paths: HomePaths
  config: NodeConfig
  privateKey: PrivateKey
  log: Logger
  /** Wall clock in ms; passed in so tests can drive it. */
  now?: () => number
  /** The host role's engine, instead of the one `host.engine` names (tests, embedders). */
  engine?: InferenceEngine
}

/**
 * The composition root of one node: its libp2p stack and the services of its roles.
 * `start()` takes the home lock and listens; `joinMesh()` reaches the bootstrap peers;
 * `stop()` closes everything and releases the lock.
 */
export class LlmeshNode {
  readonly config: NodeConfig
  readonly log: Logger
  readonly paths: HomePaths
  private readonly privateKey: PrivateKey
  private readonly now: () => number
  private startedAt = 0
  private release: (() => Promise<void>) | undefined
  private apiUrl: string | null = null
  private _libp2p: MeshLibp2p | undefined
  private _metrics: NodeMetrics | undefined
  private growth: MeshGrowth | undefined
  private presence: PresenceService | undefined
  private _chain: ChainService | undefined
  private _models: ModelService | undefined
  private engine: InferenceEngine | undefined
  private host: InferenceHost | undefined
  private adverts: HostAdverts | undefined
  private sessions: HostSessions | undefined
  private _mesh: MeshInference | undefined
  private hostPayments: HostPayments | undefined

  constructor(init: LlmeshNodeInit) {
    this.config = init.config
    this.log = init.log
    this.paths = init.paths
    this.privateKey = init.privateKey
    this.now = init.now ?? Date.now
    this.engine = init.engine
  }

  get libp2p(): MeshLibp2p {
    if (this._libp2p == null) throw new Error('node not started')
    return this._libp2p
  }

  get metrics(): NodeMetrics {
    if (this._metrics == null) throw new Error('node not started')
    return this._metrics
  }

  /** Records where the HTTP API listens, for status and presence announcements. */
  setApiUrl(url: string): void {
    this.apiUrl = url
  }

  async start(): Promise<void> {
    this.release = await lockHome(this.paths)
    try {
      await this.startServices()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  private async startServices(): Promise<void> {
    const { p2p } = this.config
    const local = p2p.localNetwork
    const libp2p = await createMeshLibp2p({
      privateKey: this.privateKey,
      listen: p2p.listen,
      announce: p2p.announce,
      maxConnections: p2p.maxConnections,
      localNetwork: local
    })
    this._libp2p = libp2p
    this._metrics = new NodeMetrics(libp2p)
    try {
      await libp2p.start()
    } catch (err) {
      if (isSystemError(err, 'EADDRINUSE') || /EADDRINUSE/.test(String((err as Error).message))) {
        throw new PortInUseError('PORT_IN_USE', `p2p.listen address ${p2p.listen.join(', ')} in ${this.paths.config} is already in use`, {
          hint: 'stop the process using it or choose another port',
          cause: err
        })
      }
      throw err
    }
    this.startedAt = this.now()
    const log = this.log
    this.growth = new MeshGrowth(
      { libp2p, log },
      { targetPeers: p2p.targetPeers, intervalMs: local ? LOCAL_NETWORK.discoveryIntervalMs : DEFAULTS.discoveryIntervalMs }
    )
    const metrics = this._metrics
    this.presence = new PresenceService(
      {
        libp2p,
        log,
        now: this.now,
        onMessage: (result) => {
          metrics.gossipReceived.inc({ topic: PRESENCE_TOPIC, result })
          if (result !== 'accepted' && result !== 'stale') metrics.rejectedMessages.inc({ protocol: PRESENCE_TOPIC, reason: result })
        },
        onPublish: () => metrics.gossipPublished.inc({ topic: PRESENCE_TOPIC })
      },
      {
        intervalMs: local ? LOCAL_NETWORK.presenceIntervalMs : DEFAULTS.presenceIntervalMs,
        version: VERSION,
        roles: this.config.roles,
        api: () => this.apiUrl
      }
    )
    this.growth.start()
    this.presence.start()
    if (this.config.chain.genesis != null) {
      const genesisPath = resolve(this.paths.home, this.config.chain.genesis)
      this._chain = new ChainService(
        { libp2p, log, metrics },
        {
          dir: join(this.paths.home, 'chain'),
          genesis: await readGenesis(genesisPath),
          genesisPath,
          signer: signerFromPrivateKey(this.privateKey),
          validator: this.config.roles.includes('validator')
        }
      )
      await this._chain.start()
    }
    this._models = new ModelService({ libp2p, log }, { dir: modelStoreDir(this.paths.home) })
    await this._models.start()
    await this.startInference(signerFromPrivateKey(this.privateKey))
    libp2p.addEventListener('peer:connect', (evt) => log.debug({ peer: evt.detail.toString() }, 'peer connected'))
    libp2p.addEventListener('peer:disconnect', (evt) => log.debug({ peer: evt.detail.toString() }, 'peer disconnected'))
    log.info({ peerId: libp2p.peerId.toString(), addresses: this.addresses(), roles: this.config.roles }, 'node started')
  }

  /** The host role's engine and protocol, the adverts every node hears, and the edge role's way to the hosts. */
  private async startInference(signer: Signer): Promise<void> {
    const { libp2p, log, metrics } = this
    const roles = this.config.roles
    const verifier = new SignatureVerifier(4_096)
    const intervalMs = this.config.p2p.localNetwork ? LOCAL_NETWORK.advertIntervalMs : HOST_DEFAULTS.advertIntervalMs
    let self: HostAdvertsInit['self']
    if (roles.includes('host')) {
      const hostConfig = this.config.host
      const engine: InferenceEngine =
        this.engine ??
        (hostConfig.engine === 'echo'
          ? new EchoEngine({ contextSize: hostConfig.contextSize })
          : new LlamaEngine(
              { log: log.child({ component: 'engine' }) },
              { threads: hostConfig.threads, sequences: hostConfig.sequences, contextSize: hostConfig.contextSize }
            ))
      this.engine = engine
      await engine.start()
      await this.loadModels(engine)
      const sealKeys = await deriveSealKeyPair(this.privateKey.raw.subarray(0, 32))
      const chain = this._chain
      if (chain != null) {
        const booksDir = join(this.paths.home, 'payments')
        await mkdir(booksDir, { recursive: true, mode: 0o700 })
        this.hostPayments = new HostPayments(
          {
            chain,
            verifier,
            log: log.child({ component: 'payments' }),
            books: new DurableFile(join(booksDir, 'host-books.cbor'), hostBooksCodec)
          },
          {
            host: signer.address,
            redeemIntervalMs: this.config.p2p.localNetwork ? LOCAL_NETWORK.redeemIntervalMs : HOST_DEFAULTS.redeemIntervalMs
          }
        )
        this.hostPayments.start()
      }
      const host = new InferenceHost(
        {
          libp2p,
          log,
          engine,
          signer,
          sealKeys,
          payments: this.hostPayments,
          now: this.now,
          onRejected: (reason) => metrics.rejectedMessages.inc({ protocol: INFER_PROTOCOL, reason }),
          onJob: (outcome) => metrics.hostJobs.inc({ outcome })
        },
        {
          limits: {
            maxJobsPerPeer: hostConfig.maxJobsPerPeer,
            requestsPerSecondPerPeer: hostConfig.requestsPerSecondPerPeer,
            requestBurstPerPeer: 2 * hostConfig.requestsPerSecondPerPeer,
            stopDrainMs: hostConfig.stopDrainMs
          }
        }
      )
      this.host = host
      await host.start()
      const store = this.models.store
      self = () => {
        const models = engine.models()
        return {
          models: models.map((m) => ({ cid: m.id, name: store.get(m.id)?.name ?? m.name ?? '' })),
          active: host.activeJobs,
          capacity: Math.max(1, models.length * hostConfig.sequences),
          priceBps: hostConfig.priceBps,
          key: sealKeys.publicKey,
          keySig: host.sealKeySignature
        }
      }
    }
    this.adverts = new HostAdverts(
      {
        libp2p,
        log,
        now: this.now,
        verifier,
        onMessage: (result) => {
          metrics.gossipReceived.inc({ topic: HOST_ADVERT_TOPIC, result })
          if (result !== 'accepted' && result !== 'stale') metrics.rejectedMessages.inc({ protocol: HOST_ADVERT_TOPIC, reason: result })
        },
        onPublish: () => metrics.gossipPublished.inc({ topic: HOST_ADVERT_TOPIC })
      },
      { intervalMs, ttlMs: intervalMs * HOST_DEFAULTS.advertTtlIntervals, self }
    )
    this.adverts.start()
    if (roles.includes('edge')) {
      this.sessions = new HostSessions({
        libp2p,
        log,
        verifier,
        self: signer.address,
        receiptCheckIntervalMs: this.config.edge.receiptCheckIntervalMs
      })
      this._mesh = new MeshInference(
        {
          adverts: this.adverts,
          sessions: this.sessions,
          router: new Router({ now: this.now, random: Math.random }),
          log,
          now: this.now,
          payments: this._chain == null ? undefined : new EdgePayments({ chain: this._chain, signer }, this._chain.state.chainId),
          hostStake:
            this._chain == null
              ? undefined
              : (peerId) => {
                  const state = (this._chain as ChainService).state
                  return { stake: state.stakes.get(`host:${peerId}`) ?? 0n, minimum: state.params.minHostStake }
                },
          // hosts whose advert this edge missed: the DHT's providers of the model (non-hosts among them fail over)
          findProviders: async (cid) => {
            const self = this.libp2p.peerId.toString()
            const providers = await this.findProviders(CID.parse(cid), EDGE_DEFAULTS.maxAttempts + 1, EDGE_DEFAULTS.providerLookupMs)
            return providers.map((p) => p.peerId).filter((p) => p !== self)
          }
        },
        this.config.edge
      )
    }
  }

  /** Loads the configured models; one that is missing or broken is logged and skipped, the others are served. */
  private async loadModels(engine: InferenceEngine): Promise<void> {
    const store = this.models.store
    for (const cid of this.config.host.models) {
      try {
        const path = await store.path(cid)
        const info = await engine.load({ id: cid, path })
        this.log.info({ model: cid, name: info.name, loadMs: info.loadMs }, 'serving model')
      } catch (err) {
        const e = err as LlmeshError<string>
        this.log.error({ model: cid, err: e.message, hint: e.hint }, 'cannot serve a configured model (host.models); serving the others')
      }
    }
  }

  /** The model store and its distribution over the mesh. */
  get models(): ModelService {
    if (this._models == null) throw new Error('node not started')
    return this._models
  }

  /** The edge's way to the hosts (undefined if this node lacks the edge role). */
  get mesh(): MeshInference | undefined {
    return this._mesh
  }

  /** Connects to the bootstrap peers (throws BootstrapUnreachableError if none answers). */
  async joinMesh(signal?: AbortSignal): Promise<void> {
    const reached = await connectBootstrapPeers(this.libp2p, this.config.p2p.bootstrap, {
      timeoutMs: this.config.p2p.bootstrapTimeoutMs,
      setting: `p2p.bootstrap in ${this.paths.config}`,
      log: this.log,
      signal
    })
    if (reached != null) this.log.info({ addr: reached }, 'reached a bootstrap peer')
    void this.growth?.round()
    void this.presence?.announce().catch(() => {})
    void this.adverts?.announce().catch(() => {})
  }

  /** The chain this node runs, if its config names a genesis. */
  get chain(): ChainService | undefined {
    return this._chain
  }

  async stop(): Promise<void> {
    this.growth?.stop()
    this.presence?.stop()
    this.adverts?.stop()
    await this.sessions?.closeAll()
    await this.host?.stop().catch(() => {})
    // after the last job is billed, before the chain stops: redeems what is due and saves the books
    this.hostPayments?.stop()
    await this.engine?.stop().catch((err) => this.log.warn({ err: (err as Error).message }, 'inference engine did not stop cleanly'))
    await this._models?.stop().catch((err) => this.log.warn({ err: (err as Error).message }, 'model store did not close cleanly'))
    try {
      await this._chain?.stop()
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'chain store did not close cleanly')
    }
    if (this._libp2p != null) {
      try {
        await this._libp2p.stop()
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'libp2p stop failed')
      }
    }
    await this.release?.()
    this.release = undefined
  }

  addresses(): string[] {
    return this.libp2p.getMultiaddrs().map((ma) => ma.toString())
  }

  status(): NodeStatus {
    const libp2p = this.libp2p
    const connections = libp2p.getConnections()
    return {
      peerId: libp2p.peerId.toString(),
      version: VERSION,
      roles: this.config.roles,
      addresses: this.addresses(),
      peers: [...new Set(connections.map((c) => c.remotePeer.toString()))].sort(),
      connections: connections.length,
      uptimeSeconds: Math.max(0, Math.floor((this.now() - this.startedAt) / 1000)),
      apiUrl: this.apiUrl,
      height: this._chain?.state.height ?? null,
      serving: this.engine?.models().map((m) => m.id) ?? []
    }
  }

  /** Peers heard on the presence topic, newest first. */
  knownPeers(): KnownPeer[] {
    return this.presence?.peers() ?? []
  }

  /** Publishes this node's presence now; returns its sequence number. */
  announcePresence(): Promise<number> {
    if (this.presence == null) throw new Error('node not started')
    return this.presence.announce()
  }

  /** Announces on the DHT that this node provides `cid`. */
  async provide(cid: CID): Promise<void> {
    await this.libp2p.contentRouting.provide(cid, { signal: AbortSignal.timeout(LIMITS.dhtQueryTimeoutMs) })
  }

  /** Peers the DHT lists as providers of `cid`, at most `limit`. */
  async findProviders(
    cid: CID,
    limit: number = LIMITS.maxProvidersPerLookup,
    timeoutMs: number = LIMITS.dhtQueryTimeoutMs
  ): Promise<Array<{ peerId: string; multiaddrs: string[] }>> {
    const found = new Map<string, string[]>()
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      for await (const p of this.libp2p.contentRouting.findProviders(cid, { signal })) {
        found.set(
          p.id.toString(),
          p.multiaddrs.map((m) => m.toString())
        )
        if (found.size >= limit) break
      }
    } catch (err) {
      // "none found" and "lookup timed out" both mean: these are all the providers we know of
      if (!['NotFoundError', 'AbortError', 'TimeoutError'].includes((err as Error).name)) throw err
    }
    return [...found].map(([peerId, multiaddrs]) => ({ peerId, multiaddrs }))
  }
}

const MAX_GENESIS_BYTES = 64 * 1024 * 1024

async function readGenesis(path: string): Promise<unknown> {
  try {
    const info = await stat(path)
    if (info.size > MAX_GENESIS_BYTES) throw new Error(`${info.size} bytes, over the ${MAX_GENESIS_BYTES}-byte limit`)
    return JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw new GenesisFileError('GENESIS_FILE', `cannot read the genesis file ${path} (chain.genesis): ${(err as Error).message}`, {
      hint: "point chain.genesis at the network's genesis.json, or set it to null to run without the chain",
      cause: err
    })
  }
}
