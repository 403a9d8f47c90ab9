import { join } from 'node:path'
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Logger } from 'pino'
import { z } from 'zod'
import {
  type AddResult,
  type Block,
  type ChainState,
  encodeTx,
  genesisState,
  Mempool,
  type SignedVote,
  signTx,
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
import { CONSENSUS_TIMEOUTS, CONSENSUS_TOPIC, MAX_TRACKED_TXS, MEMPOOL_LIMITS, SYNC_TOPIC, TX_TOPIC } from '../params/index.ts'
import { ChainStore, DurableFile, jsonCodec } from '../storage/index.ts'
import type { NodeMetrics } from './metrics.ts'

/** Verified signatures a node remembers, so a transaction is checked once, not once per block. */
const SIGNATURE_CACHE_SIZE = 200_000

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
type Decoded = { kind: 'consensus'; message: ConsensusMessage } | { kind: 'tx'; raw: Uint8Array } | { kind: 'ignore' }

const syncEnvelope = z.object({ to: z.string().max(64), msg: z.instanceof(Uint8Array) }).strict()

/**
 * Runs the chain in a node: the chain store, the mempool, and the consensus driver, wired to
 * gossipsub (proposals and votes, catch-up, transactions), the clock and the disk.
 */
export class ChainService {
  private readonly c: ChainServiceComponents
  private readonly init: ChainServiceInit
  private readonly verifier = new SignatureVerifier(SIGNATURE_CACHE_SIZE)
  private store: ChainStore | undefined
  private mempool: Mempool | undefined
  private driver: ConsensusDriver | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly statuses = new Map<string, TxStatus>()
  private readonly onGossip = (evt: CustomEvent<Message>): void => this.handle(evt.detail)
  /** What the topic validator decoded, so a message (a proposal carries a whole block) is decoded once. */
  private readonly decoded = new WeakMap<Message, Decoded>()

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
    this.mempool = new Mempool(state, MEMPOOL_LIMITS, this.verifier)
    const guardFile = new DurableFile<SignedPoint>(
      join(this.init.dir, 'sign-guard.json'),
      jsonCodec((v) => pointSchema.parse(v))
    )
    const locksFile = new DurableFile<LockState>(
      join(this.init.dir, 'locks.json'),
      jsonCodec((v) => locksSchema.parse(v))
    )
    const ownFile = new DurableFile<OwnMessages>(join(this.init.dir, 'own-messages.cbor'), {
      encode: (own) => encodeCanonical({ height: own.height, messages: own.messages.map(encodeConsensusMessage) }),
      decode: (bytes) => {
        const v = z
          .object({ height: z.number().int(), messages: z.array(z.instanceof(Uint8Array)) })
          .strict()
          .parse(decodeCanonical(bytes, 64 * 1024 * 1024))
        return { height: v.height, messages: v.messages.map((m) => decodeConsensusMessage(m)) }
      }
    })
    const signer = this.init.signer
    const guard = this.init.validator ? new StoredGuard(signer.address, guardFile.read() ?? null, (p) => guardFile.write(p)) : null
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
        broadcast: (msg) => this.publish(CONSENSUS_TOPIC, encodeConsensusMessage(msg)),
        send: (to, msg) => this.publish(SYNC_TOPIC, encodeCanonical({ to, msg: encodeConsensusMessage(msg) })),
        persistLocks: (locks) => locksFile.write(locks),
        persistOwn: (own) => ownFile.write(own),
        commitBlock: (committed) => {
          store.commit(committed.block, committed.commit, committed.state)
          this.afterCommit(committed.block, committed.hash, committed.state)
        },
        loadBlock: (height) => store.recentBlock(height) ?? store.readBlock(height),
        mempool: () => this.mempool?.candidates() ?? [],
        evidence: (a, b) => this.reportEvidence(a, b),
        log: (event, data) => log.debug({ ...data }, event)
      },
      {
        state,
        signer: this.init.validator ? signer : null,
        guard,
        verifier: this.verifier,
        timeouts: CONSENSUS_TIMEOUTS,
        locks: locksFile.read(),
        own: ownFile.read(),
        relay: false // gossipsub forwards messages itself
      }
    )
    for (const topic of [CONSENSUS_TOPIC, SYNC_TOPIC, TX_TOPIC]) {
      pubsub.topicValidators.set(topic, (_from, msg) => this.validate(msg))
      pubsub.subscribe(topic)
    }
    pubsub.addEventListener('message', this.onGossip)
    log.info({ height: state.height, chainId: state.chainId, validator: guard != null }, 'chain loaded')
    this.driver.start()
  }

  async stop(): Promise<void> {
    this.driver?.stop()
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onGossip)
    for (const topic of [CONSENSUS_TOPIC, SYNC_TOPIC, TX_TOPIC]) pubsub.topicValidators.delete(topic)
    await this.store?.close()
  }

  get state(): ChainState {
    if (this.store == null) throw new Error('chain not started')
    return this.store.latest()
  }

  readBlock(height: number): Promise<{ block: Block; commit: unknown } | undefined> {
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

  /** Checks a transaction (wire bytes), keeps it and gossips it. */
  submit(raw: Uint8Array): AddResult {
    const result = this.addTx(raw)
    if (result.ok && !result.duplicate) this.publish(TX_TOPIC, raw)
    return result
  }

  txStatus(hash: string): TxStatus | undefined {
    return this.statuses.get(hash)
  }

  private addTx(raw: Uint8Array): AddResult {
    if (this.mempool == null) throw new Error('chain not started')
    const result = this.mempool.add(raw)
    if (result.hash != null && !(result.ok && result.duplicate)) {
      this.track(
        result.hash,
        result.ok ? { status: 'pending' } : { status: 'rejected', code: result.error.code, reason: result.error.message }
      )
    }
    return result
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
    for (const raw of block.txs) this.track(txHash(raw), { status: 'committed', height: block.header.height })
    for (const d of this.mempool?.onCommit(block.txs, state) ?? [])
      this.track(d.hash, { status: 'rejected', code: d.error.code, reason: d.error.message })
    this.c.metrics.chainHeight.set(block.header.height)
    this.c.metrics.committedTxs.inc(block.txs.length)
    this.c.log.info({ height: block.header.height, hash, txs: block.txs.length }, 'committed block')
  }

  private reportEvidence(a: SignedVote, b: SignedVote): void {
    const signer = this.init.signer
    const tx = signTx(
      {
        chainId: this.state.chainId,
        from: signer.address,
        nonce: this.nextNonce(signer.address),
        fee: this.state.params.minTxFee,
        body: { type: 'evidence', a, b }
      },
      signer
    )
    const result = this.submit(encodeTx(tx))
    this.c.log.warn({ validator: a.validator, height: a.height, accepted: result.ok }, 'double-sign seen; evidence submitted')
  }

  private publish(topic: string, data: Uint8Array): void {
    this.c.libp2p.services.pubsub.publish(topic, data).then(
      () => this.c.metrics.gossipPublished.inc({ topic }),
      (err: Error) => this.c.log.debug({ topic, err: err.message }, 'publish failed')
    )
  }

  private decode(msg: Message): Decoded {
    if (msg.topic === TX_TOPIC) return { kind: 'tx', raw: msg.data }
    if (msg.topic === CONSENSUS_TOPIC) return { kind: 'consensus', message: decodeConsensusMessage(msg.data) }
    const envelope = syncEnvelope.parse(decodeCanonical(msg.data, 16 * 1024 * 1024))
    if (envelope.to !== this.c.libp2p.peerId.toString()) return { kind: 'ignore' }
    return { kind: 'consensus', message: decodeConsensusMessage(envelope.msg) }
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
      if (decoded.kind === 'consensus') reason = this.checkSigner(decoded.message)
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
    if (msg.type !== 'signed' || ![CONSENSUS_TOPIC, SYNC_TOPIC, TX_TOPIC].includes(msg.topic)) return
    const decoded = this.decoded.get(msg) ?? this.decode(msg)
    if (decoded.kind === 'tx') this.addTx(decoded.raw)
    else if (decoded.kind === 'consensus') this.driver?.onMessage(msg.from.toString(), decoded.message)
  }
}
