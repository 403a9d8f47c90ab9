/**
 * Params: every protocol constant, default and limit of LLMESH in one place. Later layers read
 * these instead of writing numbers of their own; the chain will make some of them governable.
 */
import pkg from '../../package.json' with { type: 'json' }

export const VERSION: string = pkg.version

/** Prefix of every libp2p protocol and topic of ours, so we never mix with other networks. */
export const PROTOCOL_PREFIX = '/llmesh'
export const DHT_PROTOCOL = `${PROTOCOL_PREFIX}/kad/1.0.0`
/** Gossip topic where every node announces itself (version, roles, API) periodically. */
export const PRESENCE_TOPIC = `${PROTOCOL_PREFIX}/presence/1`
/** Gossip topic of the chain's proposals and votes (transaction batches: `TX_BATCH_TOPIC`; block sync: `SYNC_PROTOCOL`). */
export const CONSENSUS_TOPIC = `${PROTOCOL_PREFIX}/consensus/1`
/** Request/response protocol between an edge and a host: inference requests multiplexed over long-lived streams. */
export const INFER_PROTOCOL = `${PROTOCOL_PREFIX}/infer/2.0.0`
/** Gossip topic where hosts advertise the models they serve, their load and their encryption key. */
export const HOST_ADVERT_TOPIC = `${PROTOCOL_PREFIX}/hosts/1`

export const ROLES = ['edge', 'host', 'validator'] as const
export type Role = (typeof ROLES)[number]

export const DEFAULT_P2P_PORT = 4001
export const DEFAULT_API_PORT = 8080
export const DEFAULT_API_HOST = '127.0.0.1'

export const LIMITS = {
  /** Connections before libp2p starts pruning. */
  maxConnections: 300,
  /** Incoming connections still in their handshake at once. */
  maxIncomingPendingConnections: 32,
  /** New inbound connections per second from one host (devnet/test configs allow loopback). */
  inboundConnectionThreshold: 5,
  /** Inbound streams per connection per protocol of ours. */
  maxInboundStreamsPerProtocol: 32,
  /** Largest gossipsub RPC frame accepted from a peer (a proposal carries its whole block). */
  maxGossipFrameBytes: 8 * 1024 * 1024,
  /** Largest presence announcement accepted (bytes of DAG-CBOR). */
  maxPresenceBytes: 2048,
  /** Largest HTTP request body the node API accepts. */
  maxHttpBodyBytes: 1024 * 1024,
  /** Longest URL path parameter (a CID, a peer id) the node API accepts. */
  maxUrlParamBytes: 512,
  /** Largest config file accepted. */
  maxConfigBytes: 256 * 1024,
  /** Presence records kept (one per peer); the oldest is dropped beyond this. */
  maxKnownPeers: 10_000,
  /** DHT providers returned by one lookup through the API. */
  maxProvidersPerLookup: 100,
  /** Longest a DHT operation requested through the API may run. */
  dhtQueryTimeoutMs: 30_000
} as const

export const DEFAULTS = {
  /** The node dials peers it discovers until it has this many connections. */
  targetPeers: 25,
  /** How often the node looks for more peers (random DHT walk) while under target. */
  discoveryIntervalMs: 30_000,
  /** How often a node announces its presence on gossip. */
  presenceIntervalMs: 30_000,
  /** How long `start` keeps trying the bootstrap peers before giving up. */
  bootstrapTimeoutMs: 30_000,
  /** How long a node waits for streams to close and stores to flush on shutdown. */
  shutdownTimeoutMs: 10_000
} as const

/** Settings for a network where every node shares one IP (a devnet or a test), never defaults. */
export const LOCAL_NETWORK = {
  discoveryIntervalMs: 2_000,
  presenceIntervalMs: 5_000,
  advertIntervalMs: 2_000,
  redeemIntervalMs: 3_000,
  inboundConnectionThreshold: 1_000,
  allow: ['/ip4/127.0.0.1', '/ip6/::1']
} as const

/** Bounds on what an inference engine accepts and on what its model workers may send back. */
export const INFERENCE_LIMITS = {
  /** Largest prompt: UTF-8 bytes of the text, or of all chat messages' contents together. */
  maxPromptBytes: 256 * 1024,
  /** Most chat messages in one request. */
  maxChatMessages: 512,
  /** Most tokens one request may ask for. */
  maxGenerateTokens: 4_096,
  maxStopSequences: 4,
  /** Longest stop sequence (UTF-8 bytes). */
  maxStopSequenceBytes: 128,
  maxTemperature: 2,
  maxTopK: 1_000,
  /** Sampling seeds are unsigned 32-bit integers (llama.cpp's sampler seed). */
  maxSeed: 2 ** 32 - 1,
  /** Longest model id (a CID) accepted. */
  maxModelIdBytes: 256,
  /** Models one engine holds at once (each in its own worker process). */
  maxLoadedModels: 8,
  /** Generations waiting for a free sequence of one model before new ones are refused. */
  maxQueuedGenerations: 64,
  /** Largest message between the engine and a model worker, either way. */
  maxIpcFrameBytes: 4 * 1024 * 1024,
  /** Tail of a worker's stderr kept to explain its death. */
  maxWorkerStderrBytes: 8 * 1024
} as const

export const INFERENCE_DEFAULTS = {
  /** Threads per model: on 2 cores, decoding with 2 threads was 20x (up to 100x+ under load) slower than with 1. */
  threads: 1,
  /** Generations one model runs at once (llama.cpp context sequences); more wait in a queue. */
  sequences: 1,
  /** Context window per sequence, capped by what the model was trained on. */
  contextSize: 4_096,
  /** Seed used when a request gives none, so every generation can be replayed. */
  seed: 0,
  /** Longest a model load (worker start, binary check, file read) may take. */
  loadTimeoutMs: 120_000,
  /** Longest a tokenize or count request may take. */
  requestTimeoutMs: 30_000,
  /** Longest one generation may run. */
  generationTimeoutMs: 600_000,
  /** How long a worker has to exit after being asked before it is killed. */
  workerExitGraceMs: 3_000
} as const

/** Bounds a host enforces on the inference protocol (`INFER_PROTOCOL`) and on its adverts. */
export const HOST_LIMITS = {
  /** Largest protocol frame either way: a sealed request carries the largest prompt plus its JSON-like envelope. */
  maxFrameBytes: INFERENCE_LIMITS.maxPromptBytes + 64 * 1024,
  /** Inference sessions (long-lived streams) one connection may hold open at the host. */
  maxSessionsPerConnection: 8,
  /** Jobs one peer may have running or queued at the host at once, over all its sessions. */
  maxJobsPerPeer: 256,
  /** Requests per second one peer may start (token bucket refilled at this rate)... */
  requestsPerSecondPerPeer: 2_000,
  /** ...with bursts up to this many. */
  requestBurstPerPeer: 4_000,
  /** Peers whose rate and job counts are tracked; the least recently seen is forgotten beyond this. */
  maxTrackedPeers: 10_000,
  /** A new session must say hello within this time. */
  helloTimeoutMs: 10_000,
  /**
   * A host that stops waits at most this long for its running jobs to end and for the vouchers
   * that pay the jobs it answered (an edge sends one right after each answer), refusing new jobs
   * as `busy` meanwhile; then it closes its sessions.
   */
  stopDrainMs: 2_000,
  /** Largest advert accepted (bytes of DAG-CBOR). */
  maxAdvertBytes: 16 * 1024,
  /** Models one advert may list. */
  maxAdvertModels: 64,
  /** Hosts an edge remembers adverts of; the oldest is dropped beyond this. */
  maxKnownHosts: 10_000
} as const

export const HOST_DEFAULTS = {
  /** How often a host advertises its models and load. */
  advertIntervalMs: 10_000,
  /** An advert older than this many intervals is forgotten (the host is presumed gone). */
  advertTtlIntervals: 3,
  /** How often a host redeems its latest vouchers on chain. */
  redeemIntervalMs: 60_000,
  /** A payer's voucher signature is checked at least this often (vouchers are cumulative: the latest carries the debt)... */
  voucherVerifyIntervalMs: 1_000,
  /** ...and whenever the unchecked part of its debt would pass this (smallest units): what a forged voucher can cost a host. */
  maxUnverifiedVoucherAmount: 100_000n
} as const

/** How an edge talks to hosts. */
export const EDGE_DEFAULTS = {
  /** Opening a session (dial, stream, key exchange) may take this long before the next host is tried. */
  sessionTimeoutMs: 5_000,
  /** A host that sends no first token within this time is given up for the next one. */
  firstTokenTimeoutMs: 120_000,
  /** Hosts tried for one request before the edge gives up (failover before the first token). */
  maxAttempts: 3,
  /** With no advert for a model, the edge asks the DHT for its providers for at most this long. */
  providerLookupMs: 3_000,
  /** `max_tokens` when a chat request gives none (OpenAI's completions default is 16; chats get more). */
  chatMaxTokens: 256,
  completionMaxTokens: 16,
  /**
   * The edge checks the signature of a session's first receipt, then of one receipt per this
   * interval (and every receipt's fields always). The sealed session already proves the host
   * sent them; the signature is what lets others check a receipt, so a host that signs falsely
   * is caught within this time and dropped (docs/inference.md, Receipts).
   */
  receiptCheckIntervalMs: 1_000
} as const

/**
 * Shape of the built-in tiny model (random weights, a byte vocabulary). Changing any of these
 * changes every tiny model's bytes, hence its CID.
 */
export const TINY_MODEL = {
  name: 'llmesh-tiny (random weights, for tests)',
  /** Its name in a devnet chain's model registry (registry names allow no spaces). */
  registryName: 'llmesh-tiny',
  /** Seed of the weights of the built-in model every devnet host serves. */
  seed: 0,
  embeddingLength: 128,
  blockCount: 2,
  headCount: 4,
  headCountKv: 4,
  feedForwardLength: 344,
  contextLength: 1_024,
  rmsEpsilon: 1e-5,
  ropeFreqBase: 10_000
} as const

/**
 * Chain parameters: part of the chain state (genesis sets them; governance will change them), so
 * every node applies the same rules at the same height. Amounts are in the smallest unit.
 */
export interface ChainParams {
  /** Target interval between blocks. */
  blockTimeMs: number
  /** Blocks an unstaked amount stays slashable before it returns to the balance. */
  unbondingBlocks: number
  minValidatorStake: bigint
  minHostStake: bigint
  /** Share of a double-signer's validator stake that is slashed, in basis points. */
  slashFractionBps: number
  /** Evidence older than this many blocks is refused. */
  evidenceMaxAgeBlocks: number
  maxValidators: number
  /** Smallest fee a transaction may carry. */
  minTxFee: bigint
  maxTxBytes: number
  maxBlockTxs: number
  maxBlockBytes: number
  /** Price of one token of a complexity-1 model at demand multiplier 1x, in the smallest unit. */
  baseFee: bigint
  /** Shares of every redeemed payment, in basis points; the treasury gets the rest (10,000 - both). */
  hostShareBps: number
  validatorShareBps: number
  /** Tokens per block a model is meant to serve: its demand multiplier rises above this and falls below. */
  targetTokensPerBlock: bigint
  /** Bounds of a demand multiplier, fixed point (1,000,000 = 1x). */
  minMultiplier: bigint
  maxMultiplier: bigint
  /** Blocks between `escrow-close` and the release of what is left, so hosts can still redeem. */
  escrowCloseDelayBlocks: number
  /** Blocks a governance proposal is open for votes, counted from the block that carries it. */
  govVotingBlocks: number
  /** Share of the proposal's snapshot power that must vote (yes, no or abstain) for the tally to count, in basis points. */
  govQuorumBps: number
  /** A proposal passes if yes is more than this share of yes + no, in basis points (5,000: a majority). */
  govThresholdBps: number
}

export const CHAIN_DEFAULTS: ChainParams = {
  blockTimeMs: 2_000,
  unbondingBlocks: 600,
  minValidatorStake: 1_000_000n,
  minHostStake: 100_000n,
  slashFractionBps: 500,
  evidenceMaxAgeBlocks: 10_000,
  maxValidators: 100,
  minTxFee: 0n,
  maxTxBytes: 4_096,
  maxBlockTxs: 10_000,
  maxBlockBytes: 4 * 1024 * 1024,
  baseFee: 10n,
  hostShareBps: 7_000,
  validatorShareBps: 2_000,
  targetTokensPerBlock: 10_000n,
  minMultiplier: 100_000n,
  maxMultiplier: 100_000_000n,
  escrowCloseDelayBlocks: 100,
  govVotingBlocks: 100,
  govQuorumBps: 3_340,
  govThresholdBps: 5_000
}

/** Allowed range of each chain parameter; genesis and governance proposals are checked against it. */
export const CHAIN_PARAM_BOUNDS: { [K in keyof ChainParams]: [ChainParams[K], ChainParams[K]] } = {
  blockTimeMs: [100, 60_000],
  unbondingBlocks: [1, 10_000_000],
  minValidatorStake: [1n, 2n ** 63n],
  minHostStake: [1n, 2n ** 63n],
  slashFractionBps: [0, 10_000],
  evidenceMaxAgeBlocks: [1, 10_000_000],
  maxValidators: [1, 1_000],
  minTxFee: [0n, 2n ** 63n],
  maxTxBytes: [256, 1024 * 1024],
  maxBlockTxs: [1, 100_000],
  maxBlockBytes: [1024, 64 * 1024 * 1024],
  baseFee: [0n, 2n ** 40n],
  hostShareBps: [0, 10_000],
  validatorShareBps: [0, 10_000],
  targetTokensPerBlock: [1n, 2n ** 48n],
  minMultiplier: [1n, 2n ** 40n],
  maxMultiplier: [1n, 2n ** 40n],
  escrowCloseDelayBlocks: [1, 10_000_000],
  govVotingBlocks: [1, 1_000_000],
  govQuorumBps: [1_000, 10_000],
  govThresholdBps: [5_000, 9_999]
}

/** Consensus timeouts of a real network (the simulation sets its own). */
export const CONSENSUS_TIMEOUTS = { proposeMs: 3_000, prevoteMs: 1_000, precommitMs: 1_000, deltaMs: 500 } as const

export const MEMPOOL_LIMITS = { maxTxs: 50_000, maxBytes: 64 * 1024 * 1024 } as const

/** Largest consensus message accepted from a peer (a proposal carries its whole block). */
export const MAX_CONSENSUS_MESSAGE_BYTES = 8 * 1024 * 1024

/**
 * Gossip topic of transaction batches: a node gathers the transactions it accepts from clients
 * for up to `delayMs` and publishes them as one message, so gossip costs one signature, one
 * verification and one frame per batch rather than per transaction.
 */
export const TX_BATCH_TOPIC = `${PROTOCOL_PREFIX}/txs/1`
export const TX_BATCH = { maxTxs: 1_024, maxBytes: 1024 * 1024, delayMs: 100 } as const

/**
 * Catch-up over a direct stream: the opener writes one length-prefixed consensus message, a
 * `block-request` (answered with one `blocks` message, then the stream closes) or an unsolicited
 * `blocks` (no answer). Bounded in frame size, blocks per answer, time, streams and pace.
 */
export const SYNC_PROTOCOL = `${PROTOCOL_PREFIX}/sync/1.0.0`
export const SYNC_LIMITS = {
  /** Largest frame either way (a `blocks` answer; a request is a few bytes). */
  maxFrameBytes: MAX_CONSENSUS_MESSAGE_BYTES,
  /** Blocks in one answer, and their bytes (an answer always carries at least one block). */
  maxBlocksPerAnswer: 16,
  maxAnswerBytes: MAX_CONSENSUS_MESSAGE_BYTES - 256 * 1024,
  /** Whole exchange, dial included. */
  timeoutMs: 10_000,
  /** Inbound sync streams open at once per connection, and requests this node has in flight. */
  maxInboundStreams: 2,
  maxOutboundRequests: 4,
  /** Least time between two answers to one peer. */
  minAnswerIntervalMs: 100
} as const

/** Transaction statuses a node remembers for `GET /mesh/tx/:hash`; the oldest are forgotten. */
export const MAX_TRACKED_TXS = 100_000

/** Largest amount a single field may hold: amounts are unsigned 64-bit integers on the wire. */
export const MAX_AMOUNT = 2n ** 64n - 1n

/** The account that receives transaction fees and slashed stake. No key can sign for it. */
export const TREASURY_ADDRESS = 'treasury'

export const STAKE_ROLES = ['validator', 'host'] as const
export type StakeRole = (typeof STAKE_ROLES)[number]

/**
 * How a model file becomes an IPFS UnixFS DAG (see docs/models.md). Changing any of these
 * changes the CID of every model imported afterwards, so a change must be deliberate.
 * Rabin (content-defined) chunking: an insertion that shifts bytes (GGUF metadata that grew)
 * changes one or two leaves instead of every leaf after it.
 */
export const MODEL_IMPORT = {
  cidVersion: 1,
  /** Leaves are raw blocks (codec 0x55), internal nodes dag-pb UnixFS files; sha2-256 throughout. */
  rawLeaves: true,
  /** Rabin chunker sizes: every leaf but the last is between min and max; kubo refuses a max above 1 MiB. */
  rabinMinChunkBytes: 262_144,
  rabinAvgChunkBytes: 524_288,
  rabinMaxChunkBytes: 1_048_576,
  /** Bytes in the rolling hash window (the importer's default). */
  rabinWindowBytes: 16,
  /** Balanced layout: links per internal node (the importer's default, and kubo's). */
  maxChildrenPerNode: 174
} as const

/** Bounds of the model store and of DAGs fetched from peers. */
export const MODEL_LIMITS = {
  /** Largest model file accepted (imported or fetched). */
  maxModelBytes: 256 * 1024 ** 3,
  /** Longest model name (UTF-8 bytes). */
  maxModelNameBytes: 256,
  /** Models one store holds. */
  maxStoredModels: 10_000,
  /** Largest model index file read back. */
  maxIndexBytes: 16 * 1024 * 1024,
  /** Largest block read or accepted from a peer (twice our largest chunk). */
  maxBlockBytes: 2 * 1024 * 1024,
  /** Most links in one internal node of a fetched DAG (1,024 covers every standard layout). */
  maxLinksPerNode: 1_024,
  /** Deepest fetched DAG (ours is 3 levels deep at the largest model size). */
  maxDagDepth: 8,
  /** Most blocks (leaves and internal nodes) in one model: the largest model in 128 KiB chunks (ours are 256 KiB or more). */
  maxModelBlocks: 2_097_152
} as const

export const MODEL_DEFAULTS = {
  /** Bytes read from a model file at a time while importing. */
  importReadBytes: 1024 * 1024,
  /** Blocks requested from peers at once while fetching a model. */
  fetchConcurrency: 16,
  /** Longest wait for one block from peers before a fetch fails. */
  fetchBlockTimeoutMs: 30_000
} as const
