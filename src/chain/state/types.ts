import type { Address } from '../../crypto/index.ts'
import { LlmeshError } from '../../errors/index.ts'
import type { ChainParams, StakeRole } from '../../params/index.ts'

export interface Account {
  balance: bigint
  /** Transactions this account has sent: the next one must carry this nonce. */
  nonce: number
}

export interface Validator {
  address: Address
  /** Voting power: the validator's bonded stake. */
  power: bigint
}

export interface Unbonding {
  address: Address
  role: StakeRole
  amount: bigint
  /** The height at which the amount returns to the balance. Slashable until then. */
  releaseHeight: number
}

export interface ModelRecord {
  name: string
  cid: string
  parent: string | null
  /** Parameter count: the model's complexity in the fee formula. */
  parameters: bigint
  owner: Address
  height: number
}

/** A payer's escrow: tokens locked to pay hosts through vouchers. */
export interface Escrow {
  balance: bigint
  /** Set by `escrow-close`: at this height what is left returns to the payer. */
  releaseHeight: number | null
}

/** A registered model's market: its demand multiplier and the tokens redeemed for it in the current block. */
export interface ModelMarket {
  /** Fixed point, 1,000,000 = 1x. */
  multiplier: bigint
  served: bigint
}

/** Running totals of settlement since genesis. */
export interface EconomyTotals {
  feesRedeemed: bigint
  paidToHosts: bigint
  paidToValidators: bigint
  paidToTreasury: bigint
}

export const GOV_CHOICES = ['yes', 'no', 'abstain'] as const
export type GovChoice = (typeof GOV_CHOICES)[number]

/** `voting` until `votingEndHeight`, then `passed` or `rejected`; a passed one is `applied` at `applyHeight`, or `failed` if it no longer fits. */
export type GovProposalStatus = 'voting' | 'passed' | 'rejected' | 'applied' | 'failed'

/** Power behind each choice, and the snapshot power still eligible (jailed validators leave both). */
export interface GovTally {
  yes: bigint
  no: bigint
  abstain: bigint
  total: bigint
}

/** A governance proposal: parameter changes, the validator powers it is voted by, and the votes. */
export interface GovProposal {
  id: number
  proposer: Address
  /** `[parameter, value as a decimal string]`, as submitted. */
  changes: ReadonlyArray<readonly [string, string]>
  /** The block that carried it. */
  height: number
  /** Votes are taken up to and including this block; the tally runs at its end. */
  votingEndHeight: number
  /** A passed proposal's changes take effect at the end of this block. */
  applyHeight: number
  /** The validator set (address and power) when it was proposed: only these vote, with these weights. */
  snapshot: readonly Validator[]
  /** By voter; a later vote replaces an earlier one. */
  votes: ReadonlyMap<Address, GovChoice>
  status: GovProposalStatus
  /** Set at the end of voting. */
  tally: GovTally | null
  /** Why a passed proposal could not apply (`failed`), else null. */
  failure: string | null
}

/**
 * The whole ledger after a block. Treated as immutable: transitions return a new state and
 * never modify their input.
 */
export interface ChainState {
  chainId: string
  /** Height of the last applied block; 0 is genesis. */
  height: number
  lastBlockHash: string
  lastBlockTime: number
  params: ChainParams
  accounts: ReadonlyMap<Address, Account>
  /** Bonded stake by `${role}:${address}`. */
  stakes: ReadonlyMap<string, bigint>
  unbonding: readonly Unbonding[]
  /** Validators removed for double-signing; they cannot rejoin the set. */
  jailed: ReadonlySet<Address>
  models: ReadonlyMap<string, ModelRecord>
  /** `${validator}:${height}` of every equivocation already punished. */
  punished: ReadonlySet<string>
  /** The set that decided the last block (checks its commit in the next block). */
  lastValidators: readonly Validator[]
  /** The set that decides block height + 1. */
  validators: readonly Validator[]
  /** The set that will decide block height + 2: staking changes take effect one block later. */
  nextValidators: readonly Validator[]
  escrows: ReadonlyMap<Address, Escrow>
  /** What the chain paid each host from each payer's escrow: by `${payer}>${host}`. */
  redeemed: ReadonlyMap<string, bigint>
  /** Per host, what rounding has kept from its share so far, in 1/10,000ths of a unit (see `splitPayment`); no entry: 0. */
  hostCarry: ReadonlyMap<Address, bigint>
  /** By model CID: every registered model has one. */
  markets: ReadonlyMap<string, ModelMarket>
  totals: EconomyTotals
  /** Governance proposals by id: open ones and the most recent finished ones. */
  proposals: ReadonlyMap<number, GovProposal>
  /** The id the next proposal gets (ids are sequential from 0). */
  nextProposalId: number
}

export function redeemedKey(payer: Address, host: Address): string {
  return `${payer}>${host}`
}

export type TxErrorCode =
  | 'WRONG_CHAIN'
  | 'BAD_SIGNATURE'
  | 'INVALID_ADDRESS'
  | 'WRONG_NONCE'
  | 'FEE_TOO_LOW'
  | 'INSUFFICIENT_BALANCE'
  | 'ZERO_AMOUNT'
  | 'BELOW_MIN_STAKE'
  | 'INSUFFICIENT_STAKE'
  | 'JAILED'
  | 'MODEL_EXISTS'
  | 'UNKNOWN_PARENT'
  | 'BAD_EVIDENCE'
  | 'DUPLICATE_EVIDENCE'
  | 'MALFORMED'
  | 'ESCROW_EXISTS'
  | 'NO_ESCROW'
  | 'ESCROW_CLOSING'
  | 'BAD_VOUCHER'
  | 'NOTHING_TO_REDEEM'
  | 'UNKNOWN_MODEL'
  | 'LOAD_OVER_PAYMENT'
  | 'NOT_A_STAKER'
  | 'PARAM_NOT_GOVERNABLE'
  | 'PARAM_OUT_OF_RANGE'
  | 'BAD_APPLY_HEIGHT'
  | 'TOO_MANY_PROPOSALS'
  | 'UNKNOWN_PROPOSAL'
  | 'VOTING_CLOSED'
  | 'NOT_A_VOTER'

/** Why a transaction was refused. A refused transaction changes nothing. */
export class TxError extends LlmeshError<TxErrorCode> {}

export type BlockErrorCode =
  | 'WRONG_CHAIN'
  | 'WRONG_HEIGHT'
  | 'WRONG_PREV_HASH'
  | 'BAD_TIME'
  | 'WRONG_VALIDATORS'
  | 'NOT_A_VALIDATOR'
  | 'BAD_TX_ROOT'
  | 'BAD_LAST_COMMIT'
  | 'TOO_LARGE'
  | 'BAD_TX'
  | 'BAD_STATE_ROOT'

/** Why a block was refused. */
export class BlockError extends LlmeshError<BlockErrorCode> {}

export function stakeKey(role: StakeRole, address: Address): string {
  return `${role}:${address}`
}
