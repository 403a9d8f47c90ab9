import { DecodeError } from '../../codec/index.ts'
import type { Address, SignatureVerifier } from '../../crypto/index.ts'
import { type Block, blockHash, type Commit, commitHash, txRootOfIds } from '../block.ts'
import { decodeTx, type SignedTx, txHash } from '../tx.ts'
import type { TxCache } from '../tx-cache.ts'
import { checkCommit, validatorsHash } from '../validator-set.ts'
import { settleBlock } from './apply-economy.ts'
import { settleGovernance } from './apply-governance.ts'
import { releaseUnbonding } from './apply-staking.ts'
import { applyTxToDraft } from './apply-tx.ts'
import { StateDraft } from './draft.ts'
import { stateRoot } from './state-root.ts'
import { BlockError, type ChainState, TxError } from './types.ts'

function decode(raw: Uint8Array, hash: string, maxBytes: number, cache: TxCache | undefined): SignedTx {
  return cache != null ? cache.decode(raw, maxBytes, hash).tx : decodeTx(raw, maxBytes)
}

/** Begins block `height`: releases due unbonding. */
function beginBlock(d: StateDraft, height: number): void {
  releaseUnbonding(d, height)
}

/**
 * Ends a block: settles the economy (escrow releases, demand multipliers), tallies and applies
 * governance (new parameters rule from the next block on), records it and rotates the validator
 * sets (stake changes act one block later).
 */
function endBlock(d: StateDraft, height: number, time: number): void {
  settleBlock(d, height)
  settleGovernance(d, height)
  d.height = height
  d.lastBlockTime = time
  d.lastValidators = d.validators
  d.validators = d.nextValidators
  d.nextValidators = d.computeValidatorSet()
}

export interface BuildBlockInput {
  proposer: Address
  time: number
  lastCommit: Commit | null
  /** Candidate transactions (wire bytes) in the order to try them. */
  candidates: Iterable<Uint8Array>
  verifier: SignatureVerifier
  /** Decoded transactions and signature results to reuse (a node passes its own). */
  txCache?: TxCache
}

export interface BuiltBlock {
  block: Block
  hash: string
  /** The state after the block. */
  state: ChainState
  /** Candidates left out, with the reason. */
  rejected: Array<{ hash: string; error: TxError | DecodeError }>
}

/**
 * Builds the next block from candidate transactions: each is applied in turn and kept only if it
 * applies, within the block's count and size limits. Pure.
 */
export function buildBlock(state: ChainState, input: BuildBlockInput): BuiltBlock {
  const height = state.height + 1
  const d = new StateDraft(state)
  beginBlock(d, height)
  const txs: Uint8Array[] = []
  const ids: string[] = []
  const rejected: BuiltBlock['rejected'] = []
  const txCtx = { height, verifier: input.verifier, txCache: input.txCache }
  let bytes = 0
  for (const raw of input.candidates) {
    if (txs.length >= state.params.maxBlockTxs || bytes + raw.byteLength > state.params.maxBlockBytes - 64 * 1024) break
    const hash = txHash(raw)
    try {
      applyTxToDraft(d, decode(raw, hash, state.params.maxTxBytes, input.txCache), txCtx)
      txs.push(raw)
      ids.push(hash)
      bytes += raw.byteLength
    } catch (err) {
      if (!(err instanceof TxError || err instanceof DecodeError)) throw err
      rejected.push({ hash, error: err })
    }
  }
  const time = Math.max(input.time, state.lastBlockTime + 1)
  endBlock(d, height, time)
  const header = {
    chainId: state.chainId,
    height,
    time,
    prevHash: state.lastBlockHash,
    txRoot: txRootOfIds(ids),
    stateRoot: '',
    proposer: input.proposer,
    validatorsHash: validatorsHash(state.validators),
    lastCommitHash: commitHash(input.lastCommit)
  }
  // the root covers the state with lastBlockHash still naming the previous block: this block's
  // hash is only known once the root is in its header
  header.stateRoot = stateRoot(d.finish())
  const hash = blockHash(header)
  d.lastBlockHash = hash
  return { block: { header, txs, lastCommit: input.lastCommit }, hash, state: d.finish(), rejected }
}

export interface ApplyBlockContext {
  verifier: SignatureVerifier
  /** Skip re-checking the last commit (it was checked when the block arrived with its own commit). */
  trustLastCommit?: boolean
  /** Decoded transactions and signature results to reuse (a node passes its own). */
  txCache?: TxCache
}

/**
 * Checks a proposed or synced block against `state` and applies it: header fields, the commit of
 * the previous block, every transaction, and the resulting state root. Throws BlockError with
 * the first problem found; returns the new state and the block's hash. Pure.
 */
export function applyBlock(state: ChainState, block: Block, ctx: ApplyBlockContext): { state: ChainState; hash: string } {
  const h = block.header
  const height = state.height + 1
  if (h.chainId !== state.chainId) throw new BlockError('WRONG_CHAIN', `block is for chain ${h.chainId}`)
  if (h.height !== height) throw new BlockError('WRONG_HEIGHT', `block height ${h.height}, expected ${height}`)
  if (h.prevHash !== state.lastBlockHash)
    throw new BlockError('WRONG_PREV_HASH', `block builds on ${h.prevHash}, not ${state.lastBlockHash}`)
  if (h.time <= state.lastBlockTime) throw new BlockError('BAD_TIME', `block time ${h.time} is not after ${state.lastBlockTime}`)
  if (h.validatorsHash !== validatorsHash(state.validators)) throw new BlockError('WRONG_VALIDATORS', 'block names another validator set')
  if (!state.validators.some((v) => v.address === h.proposer))
    throw new BlockError('NOT_A_VALIDATOR', `proposer ${h.proposer} is not a validator`)
  const ids = block.txs.map(txHash)
  if (h.txRoot !== txRootOfIds(ids)) throw new BlockError('BAD_TX_ROOT', 'transaction root does not match the transactions')
  if (h.lastCommitHash !== commitHash(block.lastCommit)) throw new BlockError('BAD_LAST_COMMIT', 'last commit hash does not match')
  if (height === 1) {
    if (block.lastCommit != null) throw new BlockError('BAD_LAST_COMMIT', 'the first block has no last commit')
  } else if (ctx.trustLastCommit !== true) {
    if (block.lastCommit == null) throw new BlockError('BAD_LAST_COMMIT', 'block lacks the commit of the previous block')
    if (block.lastCommit.height !== state.height || block.lastCommit.blockHash !== state.lastBlockHash) {
      throw new BlockError('BAD_LAST_COMMIT', 'last commit is not for the previous block')
    }
    const problem = checkCommit(block.lastCommit, state.lastValidators, state.chainId, ctx.verifier)
    if (problem != null) throw new BlockError('BAD_LAST_COMMIT', problem)
  }
  if (block.txs.length > state.params.maxBlockTxs) throw new BlockError('TOO_LARGE', `${block.txs.length} transactions`)
  const bytes = block.txs.reduce((s, t) => s + t.byteLength, 0)
  if (bytes > state.params.maxBlockBytes) throw new BlockError('TOO_LARGE', `${bytes} bytes of transactions`)

  const d = new StateDraft(state)
  beginBlock(d, height)
  const txCtx = { height, verifier: ctx.verifier, txCache: ctx.txCache }
  for (const [i, raw] of block.txs.entries()) {
    const hash = ids[i] as string
    try {
      applyTxToDraft(d, decode(raw, hash, state.params.maxTxBytes, ctx.txCache), txCtx)
    } catch (err) {
      if (!(err instanceof TxError || err instanceof DecodeError)) throw err
      throw new BlockError('BAD_TX', `transaction ${i} (${hash}) is invalid: ${err.message}`, { cause: err })
    }
  }
  endBlock(d, height, h.time)
  const root = stateRoot(d.finish())
  if (root !== h.stateRoot) throw new BlockError('BAD_STATE_ROOT', `state root ${root} differs from the header's ${h.stateRoot}`)
  const hash = blockHash(h)
  d.lastBlockHash = hash
  return { state: d.finish(), hash }
}
