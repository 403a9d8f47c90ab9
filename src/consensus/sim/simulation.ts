import {
  type Block,
  type ChainState,
  type Commit,
  decodeTx,
  encodeTx,
  genesisState,
  type SignedVote,
  signTx,
  signVote,
  txHash
} from '../../chain/index.ts'
import { SignatureVerifier, type Signer, signerFromSeed } from '../../crypto/index.ts'
import { ConsensusDriver, type ConsensusMessage, type DriverEnv, type OwnMessages } from '../driver.ts'
import { type SignedPoint, StoredGuard } from '../guard.ts'
import { decodeConsensusMessage, encodeConsensusMessage } from '../messages.ts'
import type { ConsensusTimeouts, LockState } from '../types.ts'
import { EventQueue } from './event-queue.ts'
import { Rng } from './rng.ts'

export type ByzantineBehavior = 'equivocate' | 'silent'

export interface SimOptions {
  seed: number
  validators: number
  /** Byzantine validators by index (keep their number under a third). */
  byzantine?: Array<{ index: number; behavior: ByzantineBehavior }>
  /** Simulated time to run. */
  durationMs: number
  network?: { minDelayMs: number; maxDelayMs: number; loss: number }
  /** While active, nodes in different groups cannot reach each other. */
  partitions?: Array<{ fromMs: number; toMs: number; groups: number[][] }>
  /** Honest nodes that crash (losing memory, keeping disk) and restart. */
  crashes?: Array<{ node: number; atMs: number; restartAtMs: number }>
  /** Random transfers submitted per simulated second. */
  txPerSecond?: number
  blockTimeMs?: number
  timeouts?: ConsensusTimeouts
  /** Honest nodes forward new messages to all (gossip); off for large all-honest runs. */
  relay?: boolean
  /** Send every message through the wire codec (encode, then decode at the receiver). */
  wireCodec?: boolean
  /** After the last fault heals, every honest node must commit a new block within this. */
  livenessBoundMs?: number
  /** Receives the drivers' log lines and each node's final consensus state (for debugging a seed). */
  log?: (line: string) => void
}

export interface SimResult {
  seed: number
  /** Committed height of each node at the end. */
  heights: number[]
  /** Hash of each committed height (agreed by all honest nodes). */
  hashes: string[]
  /** Per committed block and honest node: ms from the height's first proposal to its commit. */
  finalityMs: number[]
  /** Simulated times at which each node committed a block (empty for byzantine nodes). */
  commitTimes: number[][]
  /** Ms between consecutive commits on node 0 (or the first honest node). */
  blockIntervalsMs: number[]
  messagesSent: number
  /** Evidence of the equivocators reached the chain: jailed on every honest node. */
  slashed: string[]
  equivocated: string[]
}

/** A broken safety or liveness property; the message carries the seed that reproduces it. */
export class SimViolation extends Error {}

interface Disk {
  blocks: Map<number, { block: Block; commit: Commit }>
  state: ChainState
  locks: LockState | undefined
  own: OwnMessages | undefined
  guard: SignedPoint | null
}

interface SimNode {
  index: number
  id: string
  signer: Signer
  behavior: ByzantineBehavior | 'honest'
  disk: Disk
  driver: ConsensusDriver | null
  incarnation: number
  mempool: Map<string, Uint8Array>
  commitTimes: number[]
}

const DEFAULT_TIMEOUTS: ConsensusTimeouts = { proposeMs: 1_000, prevoteMs: 500, precommitMs: 500, deltaMs: 250 }

/**
 * Runs a whole validator network in one process from one seed: a seeded clock and event queue,
 * an in-memory network with delay, loss, reordering and partitions, crash-restart from a
 * simulated disk, and byzantine validators. Checks agreement at every commit and liveness and
 * slashing at the end; throws SimViolation (naming the seed) on any failure.
 */
export function runSimulation(opts: SimOptions): SimResult {
  const rng = new Rng(opts.seed)
  const queue = new EventQueue()
  const verifier = new SignatureVerifier()
  const net = opts.network ?? { minDelayMs: 5, maxDelayMs: 50, loss: 0 }
  const timeouts = opts.timeouts ?? DEFAULT_TIMEOUTS
  const wire = opts.wireCodec ?? true
  const byz = new Map((opts.byzantine ?? []).map((b) => [b.index, b.behavior]))
  let now = 0
  let messagesSent = 0
  const fail = (what: string): never => {
    throw new SimViolation(`seed ${opts.seed}: ${what} (at ${now} ms)`)
  }

  // validators and a few client accounts, all from the seed
  const signers = Array.from({ length: opts.validators + 4 }, () => signerFromSeed(rng.bytes(32)))
  const genesis = genesisState(
    {
      chainId: 'llmesh-sim',
      genesisTime: 0, // the simulated clock starts at 0: block times must be near it (proposer-based time)
      params: { blockTimeMs: opts.blockTimeMs ?? 1_000, minValidatorStake: '1000', unbondingBlocks: 1000, slashFractionBps: 1000 },
      accounts: signers.map((s) => ({ address: s.address, balance: '1000000000' })),
      // honest stakes vary; byzantine ones are the smallest, so byzantine power stays under a third
      validators: signers
        .slice(0, opts.validators)
        .map((s, i) => ({ address: s.address, stake: String(byz.has(i) ? 10_000 : 10_000 + rng.int(3) * 5_000) }))
    },
    verifier
  )
  const clients = signers.slice(opts.validators)
  const byzPower = genesis.validators
    .filter((v) => byz.has(signers.findIndex((s) => s.address === v.address)))
    .reduce((t, v) => t + v.power, 0n)
  const allPower = genesis.validators.reduce((t, v) => t + v.power, 0n)
  if (byzPower * 3n >= allPower) throw new Error(`byzantine power ${byzPower} of ${allPower} is not under a third: BFT guarantees nothing`)

  const nodes: SimNode[] = signers.slice(0, opts.validators).map((signer, index) => ({
    index,
    id: String(index),
    signer,
    behavior: byz.get(index) ?? 'honest',
    disk: { blocks: new Map(), state: genesis, locks: undefined, own: undefined, guard: null },
    driver: null,
    incarnation: 0,
    mempool: new Map(),
    commitTimes: []
  }))
  const honest = nodes.filter((n) => n.behavior === 'honest')
  const agreed = new Map<number, string>()
  const heightStart = new Map<number, number>()
  const finality: number[] = []
  const equivocated = new Set<string>()
  let lastFaultMs = 0
  for (const p of opts.partitions ?? []) lastFaultMs = Math.max(lastFaultMs, p.toMs)
  for (const c of opts.crashes ?? []) lastFaultMs = Math.max(lastFaultMs, c.restartAtMs)

  const partitioned = (a: number, b: number): boolean =>
    (opts.partitions ?? []).some(
      (p) => now >= p.fromMs && now < p.toMs && p.groups.findIndex((g) => g.includes(a)) !== p.groups.findIndex((g) => g.includes(b))
    )

  const deliver = (from: number, to: number, run: (node: SimNode) => void): void => {
    if (from === to || partitioned(from, to) || rng.chance(net.loss)) return
    messagesSent++
    const target = nodes[to] as SimNode
    queue.push(now + rng.between(net.minDelayMs, net.maxDelayMs), () => {
      if (target.driver != null) run(target)
    })
  }

  const sendMessage = (from: number, to: number, msg: ConsensusMessage): void => {
    const payload = wire ? encodeConsensusMessage(msg) : msg
    deliver(from, to, (target) => {
      const decoded = payload instanceof Uint8Array ? decodeConsensusMessage(payload) : payload
      target.driver?.onMessage(String(from), decoded)
    })
  }

  const gossipTx = (from: number, bytes: Uint8Array): void => {
    const hash = txHash(bytes)
    ;(nodes[from] as SimNode).mempool.set(hash, bytes)
    for (const n of nodes) deliver(from, n.index, (target) => target.mempool.set(hash, bytes))
  }

  const envFor = (node: SimNode): DriverEnv => {
    const incarnation = node.incarnation
    const alive = (): boolean => node.incarnation === incarnation && node.driver != null
    return {
      now: () => now,
      setTimer: (ms, fn) => queue.push(now + ms, () => alive() && fn()),
      broadcast: (msg) => {
        if (msg.kind === 'proposal' && !heightStart.has(msg.proposal.height)) heightStart.set(msg.proposal.height, now)
        if (node.behavior === 'equivocate' && msg.kind === 'vote' && msg.vote.validator === node.signer.address) {
          return equivocate(node, msg.vote)
        }
        for (const n of nodes) sendMessage(node.index, n.index, msg)
      },
      send: (to, msg) => sendMessage(node.index, Number(to), msg),
      persistLocks: (locks) => {
        node.disk.locks = locks
      },
      persistOwn: (own) => {
        node.disk.own = own
      },
      commitBlock: (c) => {
        node.disk.blocks.set(c.block.header.height, { block: c.block, commit: c.commit })
        node.disk.state = c.state
        for (const raw of c.block.txs) node.mempool.delete(txHash(raw))
        pruneMempool(node)
        if (node.behavior !== 'honest') return
        const h = c.block.header.height
        const previous = agreed.get(h)
        if (previous != null && previous !== c.hash) fail(`agreement broken at height ${h}: ${previous} vs ${c.hash} on node ${node.index}`)
        agreed.set(h, c.hash)
        node.commitTimes.push(now)
        const started = heightStart.get(h)
        if (started != null) finality.push(now - started)
      },
      loadBlock: (h) => node.disk.blocks.get(h),
      mempool: () => pendingFor(node),
      evidence: (a, b) => reportEvidence(node, a, b),
      log:
        opts.log == null ? undefined : (event, data) => opts.log?.(`[${now} ms] node ${node.index}: ${event} ${JSON.stringify(data ?? {})}`)
    }
  }

  const pendingFor = (node: SimNode): Iterable<Uint8Array> => node.mempool.values()

  // drop transactions whose nonce the chain has already used: they can never apply
  const pruneMempool = (node: SimNode): void => {
    for (const [hash, raw] of node.mempool) {
      const tx = decodeTx(raw, node.disk.state.params.maxTxBytes)
      if (tx.nonce < (node.disk.state.accounts.get(tx.from)?.nonce ?? 0)) node.mempool.delete(hash)
    }
  }

  const reportEvidence = (node: SimNode, a: SignedVote, b: SignedVote): void => {
    const state = node.disk.state
    const nonce = state.accounts.get(node.signer.address)?.nonce ?? 0
    const tx = signTx({ chainId: state.chainId, from: node.signer.address, nonce, fee: 0n, body: { type: 'evidence', a, b } }, node.signer)
    gossipTx(node.index, encodeTx(tx))
  }

  const FAKE = 'f'.repeat(64)
  const equivocate = (node: SimNode, vote: SignedVote): void => {
    const other = signVote({ ...vote, blockHash: vote.blockHash == null ? FAKE : null }, node.signer)
    equivocated.add(node.signer.address)
    for (const n of nodes) sendMessage(node.index, n.index, { kind: 'vote', vote: n.index % 2 === 0 ? vote : other })
  }

  const boot = (node: SimNode): void => {
    node.incarnation++
    const guard = new StoredGuard(node.signer.address, node.disk.guard, (p) => {
      node.disk.guard = p
    })
    node.driver = new ConsensusDriver(envFor(node), {
      state: node.disk.state,
      signer: node.signer,
      guard: node.behavior === 'equivocate' ? new StoredGuard(node.signer.address, null, () => {}) : guard,
      verifier,
      timeouts,
      locks: node.disk.locks,
      own: node.disk.own,
      lastCommit: node.disk.blocks.get(node.disk.state.height)?.commit ?? null,
      relay: opts.relay ?? true,
      rebroadcastMs: timeouts.proposeMs
    })
    node.driver.start()
  }
  const crash = (node: SimNode): void => {
    node.driver?.stop()
    node.driver = null
    node.incarnation++
    node.mempool.clear()
  }

  for (const n of nodes) if (n.behavior !== 'silent') queue.push(rng.int(50), () => boot(n))
  for (const c of opts.crashes ?? []) {
    const node = nodes[c.node]
    if (node == null || node.behavior !== 'honest') throw new Error(`crash of node ${c.node}: only honest nodes crash`)
    queue.push(c.atMs, () => crash(node))
    queue.push(c.restartAtMs, () => boot(node))
  }
  // client transfers with sequential nonces per client
  const txPerSecond = opts.txPerSecond ?? 20
  const clientNonce = new Map<string, number>()
  const submit = (): void => {
    if (txPerSecond <= 0) return
    const client = clients[rng.int(clients.length)] as Signer
    const to = signers[rng.int(signers.length)] as Signer
    const nonce = clientNonce.get(client.address) ?? 0
    clientNonce.set(client.address, nonce + 1)
    const tx = signTx(
      {
        chainId: genesis.chainId,
        from: client.address,
        nonce,
        fee: 1n,
        body: { type: 'transfer', to: to.address, amount: BigInt(1 + rng.int(100)) }
      },
      client
    )
    const entry = honest[rng.int(honest.length)] as SimNode
    gossipTx(entry.index, encodeTx(tx))
    queue.push(now + Math.max(1, Math.round(1000 / txPerSecond)), submit)
  }
  queue.push(100, submit)

  for (let steps = 0; steps < 50_000_000; steps++) {
    const ev = queue.pop()
    if (ev == null || ev.at > opts.durationMs) break
    now = ev.at
    ev.run()
  }
  now = opts.durationMs

  if (opts.log != null) {
    for (const n of nodes) {
      const c = n.driver?.consensus
      opts.log(
        `node ${n.index} ${n.behavior} h=${n.disk.state.height} core h=${c?.height} r=${c?.round} step=${c?.step} locked=${c?.lockedRound} valid=${c?.validRound} vals=${n.disk.state.validators.length}`
      )
    }
  }
  // liveness: after the last fault heals, every honest node keeps committing, never going
  // longer than the bound without a new block
  const bound = opts.livenessBoundMs
  if (bound != null && lastFaultMs + bound <= opts.durationMs) {
    for (const n of honest) {
      let last = lastFaultMs
      for (const t of [...n.commitTimes.filter((t) => t > lastFaultMs), opts.durationMs]) {
        if (t - last > bound) {
          fail(
            `node ${n.index} went ${t - last} ms without a commit after ${last} ms (bound ${bound} ms, last fault ${lastFaultMs} ms, height ${n.disk.state.height})`
          )
        }
        last = t
      }
    }
  }
  // every equivocator ends up jailed on every honest node (if there was time for evidence)
  const slashed = [...equivocated].filter((addr) => honest.every((n) => n.disk.state.jailed.has(addr)))
  if (bound != null && slashed.length < equivocated.size) {
    fail(`equivocators ${[...equivocated].filter((a) => !slashed.includes(a)).join(', ')} were not slashed on every honest node`)
  }

  const reference = honest[0] as SimNode
  const intervals = reference.commitTimes.slice(1).map((t, i) => t - (reference.commitTimes[i] as number))
  return {
    seed: opts.seed,
    heights: nodes.map((n) => n.disk.state.height),
    hashes: [...agreed.keys()].sort((a, b) => a - b).map((h) => agreed.get(h) as string),
    finalityMs: finality,
    commitTimes: nodes.map((n) => n.commitTimes),
    blockIntervalsMs: intervals,
    messagesSent,
    slashed,
    equivocated: [...equivocated]
  }
}
