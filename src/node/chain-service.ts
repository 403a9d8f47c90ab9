import { join } from 'node:path'
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import { z } from 'zod'
import {
  type AddResult,
  type Block,
  type ChainState,
  type Commit,
  decodeTxBatch,
  encodeTx,
  encodeTxBatch,
  genesisState,
  Mempool,
  type SignedVote,
  signTx,
  type TxBody,
  TxCache,
  txHash,
  verifyProposal,
  verifyVote
} from '../chain/index.ts'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import {
  ConsensusDriver,
  type ConsensusMessage,
  decodeConsensusMessage,
  encodeConsensusMessage,
  type LockState,
  type OwnMessages,
  type SignedPoint,
  StoredGuard
} from '../consensus/index.ts'
import { SignatureVerifier, type Signer } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import type { MeshLibp2p } from '../p2p/index.ts'
import {
  CONSENSUS_TIMEOUTS,
  CONSENSUS_TOPIC,
  MAX_TRACKED_TXS,
  MEMPOOL_LIMITS,
  SYNC_LIMITS,
  SYNC_PROTOCOL,
  TX_BATCH,
  TX_BATCH_TOPIC
} from '../params/index.ts'
import { ChainStore, DurableFile, jsonCodec, OwnMessagesFiles, type SignerRecord, SignerStateFiles } from '../storage/index.ts'
import type { NodeMetrics } from './metrics.ts'

/**
 * Transactions from gossip are admitted in slices of at most this many milliseconds, with the
 * event loop let go between slices, so a batch of a thousand (a quarter of a second of signature
 * checks) does not hold up proposals and votes that arrive meanwhile.
 */
const ADMIT_SLICE_MS = 10
/** Most time a proposer spends admitting queued transactions into the block it is about to build. */
const PROPOSE_ADMIT_MS = 400
/** Transactions from gossip waiting for admission; beyond this, new ones are dropped (a block carrying them is still checked in full). */
const MAX_INBOX_TXS = 32_768

/** Verified signatures a node remembers (votes and proposals; transactions go through the TxCache). */
const SIGNATURE_CACHE_SIZE = 200_000
/** Decoded transactions a node remembers with their signature result: a full mempool and then some. */
const TX_CACHE_SIZE = 65_536

// the transaction-batch topic and the sync protocol's limits live in src/params (TX_BATCH, SYNC_LIMITS)
export { SYNC_LIMITS, SYNC_PROTOCOL, TX_BATCH, TX_BATCH_TOPIC } from '../params/index.ts'

export class GenesisFileError extends LlmeshError<'GENESIS_FILE'> {}

export type TxStatus =
  | { status: 'pending' }
  | { status: 'committed'; height: number }
  | { status: 'rejected'; code: string; reason: string }

export interface ChainServiceComponents {
  libp2p: MeshLibp2p
  log: Logger
  metrics: NodeMetrics
}

export interface ChainServiceInit {
  /** Directory for the chain store and the consensus files. */
  dir: string
  genesis: unknown
  genesisPath: string
  /** The node's key; it signs votes only if the node has the validator role and stake. */
  signer: Signer
  validator: boolean
}

const pointSchema = z
  .object({ height: z.number().int(), round: z.number().int(), step: z.number().int(), blockHash: z.string().nullable() })
  .strict()
const locksSchema = z
  .object({
    height: z.number().int(),
    round: z.number().int(),
    lockedRound: z.number().int(),
    lockedHash: z.string().nullable(),
    validRound: z.number().int(),
    validHash: z.string().nullable()
  })
  .strict()
const recordSchema = z
  .object({
    guard: pointSchema.nullable(),
    locks: locksSchema.nullable(),
    votes: z.object({ height: z.number().int(), messages: z.array(z.instanceof(Uint8Array)).max(4_096) }).strict()
  })
  .strict()
const EMPTY = new Uint8Array(0)
/** Least time between two publications of one of this node's proposals (the driver re-sends every second). */
const PROPOSAL_RESEND_MS = 2_000
/** Blocks tracked for who voted for them (a few per height in play). */
const MAX_VOTED_BLOCKS = 64
/** Proposals remembered with their wire bytes, so a re-sent one is recognised instead of decoded. */
const RECENT_PROPOSALS = 4
/** Consensus messages at least this large are compared with the recent proposals before decoding. */
const PROPOSAL_DEDUP_BYTES = 16 * 1024
type Decoded = { kind: 'consensus'; message: ConsensusMessage } | { kind: 'txs'; txs: Uint8Array[] }
const TOPICS = [CONSENSUS_TOPIC, TX_BATCH_TOPIC]

/**
 * Runs the chain in a node: the chain store, the mempool, and the consensus driver, wired to
 * gossipsub (proposals and votes, catch-up, transactions), the clock and the disk.
 */
export class ChainService {
  private readonly c: ChainServiceComponents
  private readonly init: ChainServiceInit
  private readonly verifier = new SignatureVerifier(SIGNATURE_CACHE_SIZE)
  private readonly txCache = new TxCache(TX_CACHE_SIZE, new SignatureVerifier())
  private store: ChainStore | undefined
  private signerFiles: SignerStateFiles | undefined
  private mempool: Mempool | undefined
  private driver: ConsensusDriver | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly statuses = new Map<string, TxStatus>()
  private readonly onGossip = (evt: CustomEvent<Message>): void => this.handle(evt.detail)
  /** What the topic validator decoded, so a message (a proposal carries a whole block) is decoded once. */
  private readonly decoded = new WeakMap<Message, Decoded>()
  /** Wire bytes of consensus messages sent, so a re-sent proposal (with its block) is encoded once. */
  private readonly encoded = new WeakMap<ConsensusMessage, Uint8Array>()
  /** When each of this node's proposals was last published (see `proposalResendDue`). */
  private readonly proposalsSent = new WeakMap<ConsensusMessage, number>()
  /** Validators seen voting for a block, by `height:blockHash`, for the heights in play. */
  private readonly votersFor = new Map<string, Set<string>>()
  /** The last proposals decoded, with their wire bytes: a peer's re-send of one is not decoded again. */
  private recentProposals: Array<{ bytes: Uint8Array; decoded: Decoded }> = []
  /** Accepted transactions not yet gossiped, and the timer that flushes them. */
  private outbox: Uint8Array[] = []
  private outboxBytes = 0
  private outboxTimer: NodeJS.Timeout | undefined
  /** Transactions from gossip not yet admitted (from `inboxHead` on), and the pending drain. */
  private inbox: Uint8Array[] = []
  private inboxHead = 0
  private inboxDrain: NodeJS.Immediate | undefined
  /** Peers a block request is in flight to, and when each peer was last answered. */
  private readonly syncing = new Set<string>()
  private readonly answeredAt = new Map<string, number>()

  constructor(components: ChainServiceComponents, init: ChainServiceInit) {
    this.c = components
    this.init = init
  }

  async start(): Promise<void> {
    let genesis: ChainState
    try {
      genesis = genesisState(this.init.genesis, this.verifier)
    } catch (err) {
      throw new GenesisFileError('GENESIS_FILE', `genesis file ${this.init.genesisPath}: ${(err as Error).message}`, {
        hint: 'fix the file or point chain.genesis at the right one',
        cause: err
      })
    }
    const store = await ChainStore.open(join(this.init.dir, 'db'), genesis)
    this.store = store
    const state = store.latest()
    // the commit of the latest block: the next block this node proposes carries it
    const lastCommit = state.height > 0 ? ((await store.readBlock(state.height))?.commit ?? null) : null
    this.mempool = new Mempool(state, MEMPOOL_LIMITS, this.verifier, this.txCache)
    const ownCodec = {
      encode: (own: OwnMessages) => encodeCanonical({ height: own.height, messages: own.messages.map((m) => this.encode(m)) }),
      decode: (bytes: Uint8Array): OwnMessages => {
        const v = z
          .object({ height: z.number().int(), messages: z.array(z.instanceof(Uint8Array)) })
          .strict()
          .parse(decodeCanonical(bytes, 64 * 1024 * 1024))
        return { height: v.height, messages: v.messages.map((m) => decodeConsensusMessage(m)) }
      }
    }
    const recordCodec = {
      encode: (r: SignerRecord) =>
        encodeCanonical({
          guard: r.guard,
          locks: r.locks,
          votes: { height: r.votes.height, messages: r.votes.messages.map((m) => this.encode(m)) }
        }),
      decode: (bytes: Uint8Array): SignerRecord => {
        const v = recordSchema.parse(decodeCanonical(bytes, 4 * 1024 * 1024))
        return {
          guard: v.guard,
          locks: v.locks,
          votes: { height: v.votes.height, messages: v.votes.messages.map((m) => decodeConsensusMessage(m)) }
        }
      }
    }
    const dir = this.init.dir
    // what an earlier version kept in three files (guard, locks, votes), taken over once
    const legacy = (): SignerRecord => {
      const own = new OwnMessagesFiles(dir, ownCodec).read()
      return {
        guard:
          new DurableFile<SignedPoint>(
            join(dir, 'sign-guard.json'),
            jsonCodec((v) => pointSchema.parse(v))
          ).read() ?? null,
        locks:
          new DurableFile<LockState>(
            join(dir, 'locks.json'),
            jsonCodec((v) => locksSchema.parse(v))
          ).read() ?? null,
        votes: { height: own?.height ?? -1, messages: own?.messages.filter((m) => m.kind !== 'proposal') ?? [] }
      }
    }
    const signerFiles = new SignerStateFiles(dir, { record: recordCodec, own: ownCodec }, legacy)
    this.signerFiles = signerFiles
    const signer = this.init.signer
    // the guard point, the locks and the validator's messages are recorded here and made durable
    // together before anything leaves the node (`broadcast` and `send` flush first)
    const guard = this.init.validator ? new StoredGuard(signer.address, signerFiles.guard, (p) => signerFiles.recordGuard(p)) : null
    const pubsub = this.c.libp2p.services.pubsub
    const log = this.c.log
    this.driver = new ConsensusDriver(
      {
        now: () => Date.now(),
        setTimer: (ms, fn) => {
          const t = setTimeout(() => {
            this.timers.delete(t)
            fn()
          }, ms)
          this.timers.add(t)
        },
        broadcast: (msg) => {
          this.flushSignerState()
          if (msg.kind === 'block-request') this.requestFromPeers(msg.fromHeight)
          else if (msg.kind === 'proposal' && !this.proposalResendDue(msg)) return
          else this.publish(CONSENSUS_TOPIC, this.encode(msg))
        },
        send: (to, msg) => {
          this.flushSignerState()
          this.sendDirect(to, msg)
        },
        // durable at the next flush, which comes before any message leaves (see SignerStateFiles)
        persistLocks: (locks) => signerFiles.recordLocks(locks),
        persistOwn: (own) => signerFiles.recordOwn(own),
        commitBlock: (committed) => {
          store.commit(committed.block, committed.commit, committed.state)
          this.afterCommit(committed.block, committed.hash, committed.state)
        },
        loadBlock: (height) => store.recentBlock(height) ?? store.readBlock(height),
        mempool: () => {
          this.admitBeforeProposing()
          return this.mempool?.candidates() ?? []
        },
        evidence: (a, b) => this.reportEvidence(a, b),
        log: (event, data) => log.debug({ ...data }, event)
      },
      {
        state,
        signer: this.init.validator ? signer : null,
        guard,
        verifier: this.verifier,
        txCache: this.txCache,
        timeouts: CONSENSUS_TIMEOUTS,
        locks: signerFiles.locks ?? undefined,
        own: signerFiles.own(),
        lastCommit,
        relay: false // gossipsub forwards messages itself
      }
    )
    for (const topic of TOPICS) {
      pubsub.topicValidators.set(topic, (_from, msg) => this.validate(msg))
      pubsub.subscribe(topic)
    }
    await this.c.libp2p.handle(SYNC_PROTOCOL, (stream, connection) => this.serveSync(stream, connection), {
      maxInboundStreams: SYNC_LIMITS.maxInboundStreams
    })
    pubsub.addEventListener('message', this.onGossip)
    log.info({ height: state.height, chainId: state.chainId, validator: guard != null }, 'chain loaded')
    this.driver.start()
  }

  async stop(): Promise<void> {
    this.driver?.stop()
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    clearTimeout(this.outboxTimer)
    clearImmediate(this.inboxDrain)
    this.inbox = []
    this.inboxHead = 0
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onGossip)
    for (const topic of TOPICS) pubsub.topicValidators.delete(topic)
    await this.c.libp2p.unhandle(SYNC_PROTOCOL)
    const signerFiles = this.signerFiles
    this.signerFiles = undefined
    await signerFiles?.close()
    await this.store?.close()
  }

  /**
   * Whether to publish this proposal now. The driver re-sends its own messages every second so a
   * peer that lost one recovers; a proposal carries its whole block (megabytes under load, each
   * copy signed, encrypted, forwarded and decoded by every peer), so it goes out again only
   * PROPOSAL_RESEND_MS after it last did, and not at all once every other validator has voted for
   * its block (a validator votes for a block only after checking it, so it has it).
   */
  private proposalResendDue(msg: ConsensusMessage & { kind: 'proposal' }): boolean {
    const now = Date.now()
    const last = this.proposalsSent.get(msg)
    if (last == null) {
      this.proposalsSent.set(msg, now)
      return true
    }
    if (now - last < PROPOSAL_RESEND_MS) return false
    const p = msg.proposal
    const voters = this.votersFor.get(`${p.height}:${p.blockHash}`)
    const validators = this.store?.latest().validators ?? []
    if (voters != null && validators.length > 0 && validators.every((v) => v.address === p.proposer || voters.has(v.address))) return false
    this.proposalsSent.set(msg, now)
    return true
  }

  /** Remembers that `vote`'s validator voted for its block (so it has the block). Bounded to the heights in play. */
  private noteVote(vote: SignedVote): void {
    if (vote.blockHash == null) return
    const height = this.store?.latest().height ?? 0
    if (vote.height <= height || vote.height > height + 2) return
    if (this.votersFor.size >= MAX_VOTED_BLOCKS) {
      for (const key of this.votersFor.keys()) if (Number(key.split(':')[0]) <= height) this.votersFor.delete(key)
      if (this.votersFor.size >= MAX_VOTED_BLOCKS) return
    }
    const key = `${vote.height}:${vote.blockHash}`
    let voters = this.votersFor.get(key)
    if (voters == null) {
      voters = new Set()
      this.votersFor.set(key, voters)
    }
    voters.add(vote.validator)
  }

  /** Makes the guard point, locks and own messages recorded so far durable (one write); a no-op if nothing changed. */
  private flushSignerState(): void {
    this.signerFiles?.flush()
  }

  get state(): ChainState {
    if (this.store == null) throw new Error('chain not started')
    return this.store.latest()
  }

  readBlock(height: number): Promise<{ block: Block; commit: Commit } | undefined> {
    if (this.store == null) throw new Error('chain not started')
    return this.store.readBlock(height)
  }

  get mempoolSize(): number {
    return this.mempool?.size ?? 0
  }

  /** The nonce the next transaction of `address` must carry (mempool included). */
  nextNonce(address: string): number {
    return this.mempool?.nextNonce(address) ?? 0
  }

  /** Checks a transaction (wire bytes), keeps it and gossips it (in the next batch). */
  submit(raw: Uint8Array): AddResult {
    const result = this.addTx(raw)
    if (result.ok && !result.duplicate) this.gossipTx(raw)
    return result
  }

  private gossipTx(raw: Uint8Array): void {
    if (this.outboxBytes + raw.byteLength > TX_BATCH.maxBytes - 1024) this.flushTxs()
    this.outbox.push(raw)
    this.outboxBytes += raw.byteLength
    if (this.outbox.length >= TX_BATCH.maxTxs) this.flushTxs()
    else this.outboxTimer ??= setTimeout(() => this.flushTxs(), TX_BATCH.delayMs)
  }

  private flushTxs(): void {
    clearTimeout(this.outboxTimer)
    this.outboxTimer = undefined
    if (this.outbox.length === 0) return
    const batch = this.outbox
    this.outbox = []
    this.outboxBytes = 0
    this.publish(TX_BATCH_TOPIC, encodeTxBatch(batch))
  }

  private encode(msg: ConsensusMessage): Uint8Array {
    let bytes = this.encoded.get(msg)
    if (bytes == null) {
      bytes = encodeConsensusMessage(msg)
      this.encoded.set(msg, bytes)
    }
    return bytes
  }

  txStatus(hash: string): TxStatus | undefined {
    return this.statuses.get(hash)
  }

  private addTx(raw: Uint8Array): AddResult {
    if (this.mempool == null) throw new Error('chain not started')
    const result = this.mempool.add(raw)
    // a transaction that arrives again after its block (late gossip) stays `committed`
    const committed = result.hash != null && this.statuses.get(result.hash)?.status === 'committed'
    if (result.hash != null && !(result.ok && result.duplicate) && !committed) {
      this.track(
        result.hash,
        result.ok ? { status: 'pending' } : { status: 'rejected', code: result.error.code, reason: result.error.message }
      )
    }
    return result
  }

  /** Queues transactions from gossip for admission, in order (a sender's follow each other). */
  private enqueueTxs(txs: Uint8Array[]): void {
    const room = MAX_INBOX_TXS - (this.inbox.length - this.inboxHead)
    if (room < txs.length) this.c.metrics.rejectedMessages.inc({ protocol: TX_BATCH_TOPIC, reason: 'inbox_full' })
    for (const raw of txs.length <= room ? txs : txs.slice(0, Math.max(0, room))) this.inbox.push(raw)
    this.inboxDrain ??= setImmediate(() => this.drainInbox())
  }

  /** Admits queued transactions for up to ADMIT_SLICE_MS, then yields to the event loop if more wait. */
  private drainInbox(): void {
    this.inboxDrain = undefined
    if (this.admitFromInbox(ADMIT_SLICE_MS, Number.POSITIVE_INFINITY)) this.inboxDrain = setImmediate(() => this.drainInbox())
  }

  /**
   * Admits queued transactions, in order, for up to `budgetMs` or until the mempool holds
   * `mempoolTarget`; returns whether some still wait.
   */
  private admitFromInbox(budgetMs: number, mempoolTarget: number): boolean {
    const mempool = this.mempool
    if (mempool == null) return false
    const until = performance.now() + budgetMs
    while (this.inboxHead < this.inbox.length && mempool.size < mempoolTarget && performance.now() < until) {
      const raw = this.inbox[this.inboxHead] as Uint8Array
      this.inbox[this.inboxHead++] = EMPTY
      // already in a committed block (checked with it while it waited here): nothing to admit
      if (this.statuses.get(txHash(raw))?.status !== 'committed') this.addTx(raw)
    }
    if (this.inboxHead >= this.inbox.length) {
      this.inbox = []
      this.inboxHead = 0
      return false
    }
    if (this.inboxHead > 4_096) {
      this.inbox = this.inbox.slice(this.inboxHead)
      this.inboxHead = 0
    }
    return true
  }

  /**
   * Before building a block: a validator behind on admitting gossiped transactions (its inbox
   * long, its mempool short) would propose a small or empty block while thousands wait. It admits
   * from its inbox first, for up to PROPOSE_ADMIT_MS: work it must do anyway (each transaction is
   * verified once per node), done where it fills the block.
   */
  private admitBeforeProposing(): void {
    const maxBlockTxs = this.store?.latest().params.maxBlockTxs ?? 0
    if (this.admitFromInbox(PROPOSE_ADMIT_MS, maxBlockTxs)) this.inboxDrain ??= setImmediate(() => this.drainInbox())
  }

  private track(hash: string, status: TxStatus): void {
    this.statuses.delete(hash)
    this.statuses.set(hash, status)
    if (this.statuses.size > MAX_TRACKED_TXS) {
      const oldest = this.statuses.keys().next().value
      if (oldest != null) this.statuses.delete(oldest)
    }
  }

  private afterCommit(block: Block, hash: string, state: ChainState): void {
    const ids = block.txs.map(txHash)
    for (const id of ids) this.track(id, { status: 'committed', height: block.header.height })
    for (const d of this.mempool?.onCommit(block.txs, state, ids) ?? [])
      this.track(d.hash, { status: 'rejected', code: d.error.code, reason: d.error.message })
    this.c.metrics.chainHeight.set(block.header.height)
    this.c.metrics.committedTxs.inc(block.txs.length)
    this.c.log.info({ height: block.header.height, hash, txs: block.txs.length }, 'committed block')
  }

  /** Signs a transaction with this node's key (next nonce, minimum fee) and submits it. */
  submitOwn(body: TxBody): AddResult {
    const signer = this.init.signer
    const tx = signTx(
      { chainId: this.state.chainId, from: signer.address, nonce: this.nextNonce(signer.address), fee: this.state.params.minTxFee, body },
      signer
    )
    return this.submit(encodeTx(tx))
  }

  private reportEvidence(a: SignedVote, b: SignedVote): void {
    const result = this.submitOwn({ type: 'evidence', a, b })
    this.c.log.warn({ validator: a.validator, height: a.height, accepted: result.ok }, 'double-sign seen; evidence submitted')
  }

  private publish(topic: string, data: Uint8Array): void {
    this.c.libp2p.services.pubsub.publish(topic, data).then(
      () => this.c.metrics.gossipPublished.inc({ topic }),
      (err: Error) => this.c.log.debug({ topic, err: err.message }, 'publish failed')
    )
  }

  private decode(msg: Message): Decoded {
    if (msg.topic === TX_BATCH_TOPIC) return { kind: 'txs', txs: decodeTxBatch(msg.data, TX_BATCH) }
    const large = msg.data.byteLength >= PROPOSAL_DEDUP_BYTES
    if (large) {
      // a proposal re-sent by its proposer: the same bytes decode to the same message
      const known = this.recentProposals.find((p) => Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength).equals(msg.data))
      if (known != null) return known.decoded
    }
    const message = decodeConsensusMessage(msg.data)
    // catch-up travels over direct streams, never over gossip
    if (message.kind !== 'proposal' && message.kind !== 'vote') throw new Error(`${message.kind} on ${msg.topic}`)
    const decoded: Decoded = { kind: 'consensus', message }
    if (large && message.kind === 'proposal')
      this.recentProposals = [{ bytes: msg.data, decoded }, ...this.recentProposals.slice(0, RECENT_PROPOSALS - 1)]
    return decoded
  }

  /** The driver's messages to one peer: catch-up requests and answers, over a direct stream. */
  private sendDirect(to: string, msg: ConsensusMessage): void {
    if (msg.kind === 'block-request') void this.fetchBlocks(to, msg.fromHeight)
    else if (msg.kind === 'blocks')
      this.exchange(to, msg, false).catch((err: Error) => this.c.log.debug({ peer: to, err: err.message }, 'pushing blocks failed'))
  }

  /** Asks a few peers that follow the chain for blocks from `fromHeight` (a block we lack). */
  private requestFromPeers(fromHeight: number): void {
    const peers = this.c.libp2p.services.pubsub.getSubscribers(CONSENSUS_TOPIC)
    for (const peer of peers.slice(0, SYNC_LIMITS.maxOutboundRequests)) void this.fetchBlocks(peer.toString(), fromHeight)
  }

  private async fetchBlocks(peer: string, fromHeight: number): Promise<void> {
    if (this.syncing.has(peer) || this.syncing.size >= SYNC_LIMITS.maxOutboundRequests) return
    this.syncing.add(peer)
    try {
      const answer = await this.exchange(peer, { kind: 'block-request', fromHeight }, true)
      if (answer?.kind !== 'blocks') throw new Error(`answered a block request with ${answer?.kind ?? 'nothing'}`)
      this.driver?.onMessage(peer, answer)
    } catch (err) {
      this.c.log.debug({ peer, fromHeight, err: (err as Error).message }, 'block request failed')
    } finally {
      this.syncing.delete(peer)
    }
  }

  /** Opens a sync stream to `peer`, writes one message and, if `answered`, reads one back. */
  private async exchange(peer: string, msg: ConsensusMessage, answered: boolean): Promise<ConsensusMessage | undefined> {
    const signal = AbortSignal.timeout(SYNC_LIMITS.timeoutMs)
    const stream = await this.c.libp2p.dialProtocol(peerIdFromString(peer), SYNC_PROTOCOL, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: SYNC_LIMITS.maxFrameBytes })
      await lp.write(encodeConsensusMessage(msg), { signal })
      const answer = answered ? decodeConsensusMessage((await lp.read({ signal })).subarray()) : undefined
      await stream.close({ signal })
      return answer
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  /** One inbound sync stream: a block request (answered from the store) or blocks pushed to us. */
  private async serveSync(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(SYNC_LIMITS.timeoutMs)
    let reason = 'malformed'
    try {
      const lp = lpStream(stream, { maxDataLength: SYNC_LIMITS.maxFrameBytes })
      const msg = decodeConsensusMessage((await lp.read({ signal })).subarray())
      if (msg.kind === 'block-request') {
        const now = Date.now()
        if (now - (this.answeredAt.get(peer) ?? 0) < SYNC_LIMITS.minAnswerIntervalMs) {
          reason = 'rate_limited'
          throw new Error('asked again too soon')
        }
        if (this.answeredAt.size >= 1_000) this.answeredAt.clear()
        this.answeredAt.set(peer, now)
        await lp.write(encodeConsensusMessage({ kind: 'blocks', blocks: await this.blocksFrom(msg.fromHeight) }), { signal })
      } else if (msg.kind === 'blocks') {
        this.driver?.onMessage(peer, msg)
      } else throw new Error(`${msg.kind} on the sync protocol`)
      await stream.close({ signal })
    } catch (err) {
      this.c.metrics.rejectedMessages.inc({ protocol: SYNC_PROTOCOL, reason })
      this.c.log.debug({ peer, err: (err as Error).message }, 'sync stream cut off')
      stream.abort(err as Error)
    }
  }

  /** Committed blocks with their commits from `fromHeight` on, within the answer's bounds. */
  private async blocksFrom(fromHeight: number): Promise<Array<{ block: Block; commit: Commit }>> {
    const store = this.store
    if (store == null) return []
    const blocks: Array<{ block: Block; commit: Commit }> = []
    let bytes = 0
    const top = store.latest().height
    for (let h = Math.max(1, fromHeight); h <= top && blocks.length < SYNC_LIMITS.maxBlocksPerAnswer; h++) {
      const stored = await store.readBlock(h)
      if (stored == null) break
      const size = stored.block.txs.reduce((sum, tx) => sum + tx.byteLength, 64 * 1024)
      if (blocks.length > 0 && bytes + size > SYNC_LIMITS.maxAnswerBytes) break
      blocks.push(stored)
      bytes += size
    }
    return blocks
  }

  /**
   * Gossip validation: malformed or oversized messages, and votes or proposals that are not
   * signed by a validator of the current set, are rejected (gossipsub lowers the sender's score
   * and does not forward them). Everything else is checked in full by the driver.
   */
  private validate(msg: Message): TopicValidatorResult {
    let reason: string | null = null
    try {
      const decoded = this.decode(msg)
      this.decoded.set(msg, decoded)
      if (decoded.kind === 'consensus') {
        reason = this.checkSigner(decoded.message)
        if (reason == null && decoded.message.kind === 'vote') this.noteVote(decoded.message.vote)
      }
    } catch {
      reason = 'malformed'
    }
    this.c.metrics.gossipReceived.inc({ topic: msg.topic, result: reason ?? 'accepted' })
    if (reason == null) return TopicValidatorResult.Accept
    this.c.metrics.rejectedMessages.inc({ protocol: msg.topic, reason })
    return TopicValidatorResult.Reject
  }

  private checkSigner(m: ConsensusMessage): string | null {
    const state = this.store?.latest()
    if (state == null) return null
    // the set deciding the next block, or the one after it (a peer may be a block ahead)
    const isValidator = (a: string): boolean =>
      state.validators.some((v) => v.address === a) || state.nextValidators.some((v) => v.address === a)
    if (m.kind === 'vote') {
      if (!isValidator(m.vote.validator)) return 'not_a_validator'
      if (!verifyVote(m.vote, this.verifier)) return 'bad_signature'
    } else if (m.kind === 'proposal') {
      if (!isValidator(m.proposal.proposer)) return 'not_a_validator'
      if (!verifyProposal(m.proposal, this.verifier)) return 'bad_signature'
    }
    return null
  }

  private handle(msg: Message): void {
    if (msg.type !== 'signed' || !TOPICS.includes(msg.topic)) return
    const decoded = this.decoded.get(msg) ?? this.decode(msg)
    if (decoded.kind === 'txs') this.enqueueTxs(decoded.txs)
    else this.driver?.onMessage(msg.from.toString(), decoded.message)
  }
}
