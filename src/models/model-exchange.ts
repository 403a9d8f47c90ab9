import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Helia, Provider, Router } from 'helia'
import type { Blockstore, Pair } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import { LIMITS, MODEL_DEFAULTS, MODEL_LIMITS } from '../params/index.ts'
import type { BlockReader } from './dag.ts'
import { ModelFetchError } from './errors.ts'
import type { StoredModel } from './model-index.ts'
import { type FetchProgress, type ModelStore, parseModelCid } from './model-store.ts'

export interface ModelExchangeComponents {
  /** The node's libp2p (started or not); the exchange adds the bitswap protocol to it and never stops it. */
  libp2p: Libp2p
  store: ModelStore
}

export interface ModelExchangeInit {
  /** Longest wait for one block from peers. */
  blockTimeoutMs?: number
  /** Blocks requested at once. */
  concurrency?: number
}

export interface FetchModelOptions {
  /** Name to list the model under; its CID by default. */
  name?: string
  /** Peers known to hold the model; asked first (connected peers and DHT providers are asked too). */
  providers?: PeerId[]
  signal?: AbortSignal
  onProgress?: (progress: FetchProgress) => void
}

/**
 * Serving and fetching model blocks over bitswap (`/ipfs/bitswap/1.2.0`, so standard IPFS nodes
 * can take part). A minimal Helia instance is built around the node's own libp2p and a read-only
 * view of the store's blocks: bitswap answers peers' wants from the store, and `fetch` asks peers
 * for the blocks a model lacks. Blocks are written only by the store (`ModelStore.adopt`), which
 * checks each against its CID, bounds the DAG and checks the whole file before listing it.
 */
export class ModelExchange {
  private readonly libp2p: Libp2p
  private readonly store: ModelStore
  private readonly blockTimeoutMs: number
  private readonly concurrency: number
  private helia: Helia | undefined

  constructor(components: ModelExchangeComponents, init: ModelExchangeInit = {}) {
    this.libp2p = components.libp2p
    this.store = components.store
    this.blockTimeoutMs = init.blockTimeoutMs ?? MODEL_DEFAULTS.fetchBlockTimeoutMs
    this.concurrency = init.concurrency ?? MODEL_DEFAULTS.fetchConcurrency
  }

  async start(): Promise<void> {
    if (this.helia != null) return
    // loaded here, not at the top: Helia takes seconds to import, and most users of the store never fetch
    const [{ createHeliaLight }, { withBitswap }] = await Promise.all([import('helia'), import('@helia/bitswap')])
    const helia = createHeliaLight({ blockstore: storeView(this.store), routers: [dhtRouter(this.libp2p)] })
    // Helia's own libp2p mixin always creates a libp2p; bitswap only needs the property
    Object.defineProperty(helia, 'libp2p', { value: this.libp2p, enumerable: true })
    withBitswap(helia as Parameters<typeof withBitswap>[0], {
      maxInboundStreams: LIMITS.maxInboundStreamsPerProtocol,
      maxIncomingMessageSize: 2 * MODEL_LIMITS.maxBlockBytes,
      maxOutgoingMessageSize: 2 * MODEL_LIMITS.maxBlockBytes,
      // the serving side keeps a sent want for this long and ignores the same want meanwhile; a
      // peer never cancels it, so a peer that deleted a model could not get its blocks again on
      // the same connection ("Want was aborted"). 0 lets the next message clear it.
      doNotResendBlockWindow: 0
    })
    await helia.start()
    this.helia = helia
  }

  async stop(): Promise<void> {
    const helia = this.helia
    this.helia = undefined
    await helia?.stop()
  }

  /**
   * Fetches the model `cid` from peers into the store and lists it; returns it at once if it is
   * already stored. Only the blocks the store lacks cross the network, so a new version of a
   * stored model costs what changed. Progress reports blocks and bytes as they arrive.
   */
  async fetch(cid: string | CID, options: FetchModelOptions = {}): Promise<StoredModel> {
    const root = parseModelCid(cid)
    const existing = this.store.get(root)
    if (existing != null) return existing
    const fetchBlock: BlockReader = async (block, opts) => {
      const helia = this.helia
      if (helia == null) {
        throw new ModelFetchError('MODEL_EXCHANGE_STOPPED', root.toString(), 'the model exchange is not running', 'start the node first')
      }
      const timeout = AbortSignal.timeout(this.blockTimeoutMs)
      const signal = opts?.signal == null ? timeout : AbortSignal.any([opts.signal, timeout])
      try {
        const parts: Uint8Array[] = []
        for await (const part of helia.blockstore.get(block, { signal, providers: options.providers?.map((p) => p.toCID()) })) {
          parts.push(part)
        }
        return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
      } catch (err) {
        if (opts?.signal?.aborted === true) throw opts.signal.reason
        if (timeout.aborted) {
          throw new ModelFetchError(
            'MODEL_FETCH_TIMEOUT',
            root.toString(),
            `no peer sent block ${block} of model ${root} within ${this.blockTimeoutMs} ms`,
            'check that a peer holding the model is reachable, then fetch again (blocks already fetched are not kept)',
            err
          )
        }
        throw new ModelFetchError(
          'MODEL_FETCH_FAILED',
          root.toString(),
          `block ${block} of model ${root} could not be fetched: ${(err as Error).message}`,
          'fetch again, or from another peer',
          err
        )
      }
    }
    return this.store.adopt(root, fetchBlock, {
      name: options.name,
      signal: options.signal,
      concurrency: this.concurrency,
      onProgress: options.onProgress
    })
  }
}

/**
 * The store's blocks as Helia sees them: reads go to the store (hash-checked), writes are
 * dropped, since the store writes what it fetched itself, and nothing is ever deleted through
 * Helia (its delete needs a content router and would bypass the store's accounting).
 */
function storeView(store: ModelStore): Blockstore {
  const get = async function* (cid: CID, options?: { signal?: AbortSignal }): AsyncGenerator<Uint8Array> {
    const bytes = await store.readBlock(cid, options)
    if (bytes == null) throw Object.assign(new Error(`block ${cid} not found`), { name: 'NotFoundError' })
    yield bytes
  }
  return {
    has: async (cid) => store.hasBlock(cid),
    get,
    put: async (cid) => cid,
    putMany: async function* (source) {
      for await (const { cid } of source) yield cid
    },
    getMany: async function* (source, options) {
      for await (const cid of source) yield { cid, bytes: get(cid, options) } satisfies Pair
    },
    getAll: async function* () {},
    delete: async () => {},
    deleteMany: async function* (source) {
      for await (const cid of source) yield cid
    }
  }
}

/** Content routing through the node's DHT, so bitswap can find and dial providers it is not connected to. */
function dhtRouter(libp2p: Libp2p): Router {
  return {
    name: 'llmesh-dht',
    findProviders: async function* (cid, options): AsyncGenerator<Provider> {
      for await (const peer of libp2p.contentRouting.findProviders(cid, options)) {
        yield { id: peer.id.toCID(), multiaddrs: peer.multiaddrs, router: 'llmesh-dht', fallback: false }
      }
    }
  }
}
