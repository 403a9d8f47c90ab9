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
  /** Largest gossipsub RPC frame accepted from a peer. */
  maxGossipFrameBytes: 1024 * 1024,
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
  inboundConnectionThreshold: 1_000,
  allow: ['/ip4/127.0.0.1', '/ip6/::1']
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
  maxBlockBytes: 4 * 1024 * 1024
}

/** Allowed range of each chain parameter; genesis and (later) governance are checked against it. */
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
  maxBlockBytes: [1024, 64 * 1024 * 1024]
}

/** Largest amount a single field may hold: amounts are unsigned 64-bit integers on the wire. */
export const MAX_AMOUNT = 2n ** 64n - 1n

/** The account that receives transaction fees and slashed stake. No key can sign for it. */
export const TREASURY_ADDRESS = 'treasury'

export const STAKE_ROLES = ['validator', 'host'] as const
export type StakeRole = (typeof STAKE_ROLES)[number]
