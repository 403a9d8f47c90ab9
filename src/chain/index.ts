/**
 * Chain: the MESH ledger. Canonical objects (transactions, votes, proposals, blocks, commits)
 * and the pure, deterministic state machine: `applyTx`, `buildBlock`, `applyBlock`,
 * `genesisState`, `stateRoot`. No clock, randomness or I/O here: callers pass them in.
 */
export type { Block, BlockHeader, Commit } from './block.ts'
export { blockHash, blockSchema, commitHash, commitSchema, decodeBlock, encodeBlock, encodeCommit, txRoot, txRootOfIds } from './block.ts'
export type { MultiplierBounds, PriceInput, Split, SplitShares } from './economics.ts'
export {
  BPS_ONE,
  COMPLEXITY_UNIT_PARAMETERS,
  complexityOf,
  DEFAULT_SPLIT,
  MAX_MULTIPLIER_CHANGE_BPS,
  MULTIPLIER_ONE,
  nextMultiplier,
  requestPrice,
  splitPayment
} from './economics.ts'
export type { AddResult, MempoolLimits } from './mempool.ts'
export { Mempool, MempoolError } from './mempool.ts'
export type { ApplyBlockContext, BuildBlockInput, BuiltBlock } from './state/apply-block.ts'
export { applyBlock, buildBlock } from './state/apply-block.ts'
export { tokensValue } from './state/apply-economy.ts'
export {
  FIXED_PARAMS,
  GOVERNABLE_PARAMS,
  MAX_APPLY_DELAY_BLOCKS,
  MAX_FINISHED_PROPOSALS,
  MAX_OPEN_PROPOSALS,
  MAX_OPEN_PROPOSALS_PER_PROPOSER,
  paramsWithChanges,
  tallyPasses,
  tallyProposal
} from './state/apply-governance.ts'
export type { TxContext, TxResult } from './state/apply-tx.ts'
export { applyTx } from './state/apply-tx.ts'
export { StateDraft, totalSupply } from './state/draft.ts'
export type { GenesisInput } from './state/genesis.ts'
export { checkParams, GenesisError, genesisSchema, genesisState } from './state/genesis.ts'
export { decodeState, encodeState, MAX_SNAPSHOT_BYTES } from './state/snapshot.ts'
export { stateRoot } from './state/state-root.ts'
export type {
  Account,
  BlockErrorCode,
  ChainState,
  EconomyTotals,
  Escrow,
  GovChoice,
  GovProposal,
  GovProposalStatus,
  GovTally,
  ModelMarket,
  ModelRecord,
  TxErrorCode,
  Unbonding,
  Validator
} from './state/types.ts'
export { BlockError, GOV_CHOICES, redeemedKey, stakeKey, TxError } from './state/types.ts'
export type { SignedTx, TxBody, TxType, UnsignedTx } from './tx.ts'
export {
  decodeTx,
  decodeTxBatch,
  encodeTx,
  encodeTxBatch,
  MAX_GOV_CHANGES,
  MAX_REDEEM_MODELS,
  MAX_REDEEM_VOUCHERS,
  signedTxSchema,
  signTx,
  txHash,
  txSignBytes,
  verifyTxSignature
} from './tx.ts'
export type { DecodedTx } from './tx-cache.ts'
export { TxCache } from './tx-cache.ts'
export { checkCommit, isOneThird, isQuorum, powerOf, totalPower, validatorsHash } from './validator-set.ts'
export type { Proposal, SignedProposal, SignedVote, Vote, VoteType } from './vote.ts'
export {
  isEquivocation,
  proposalSignBytes,
  signedProposalSchema,
  signedVoteSchema,
  signProposal,
  signVote,
  VOTE_TYPES,
  verifyProposal,
  verifyVote,
  voteSignBytes
} from './vote.ts'
export type { Voucher, VoucherBody, VoucherErrorCode } from './voucher.ts'
export { decodeVoucher, MAX_VOUCHER_BYTES, signVoucher, VoucherError, verifyVoucher, voucherSigned } from './voucher.ts'
