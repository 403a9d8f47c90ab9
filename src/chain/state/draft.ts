import type { Address } from '../../crypto/index.ts'
import { type ChainParams, type StakeRole, TREASURY_ADDRESS } from '../../params/index.ts'
import {
  type Account,
  type ChainState,
  type EconomyTotals,
  type Escrow,
  type GovProposal,
  type ModelMarket,
  type ModelRecord,
  stakeKey,
  type Unbonding,
  type Validator
} from './types.ts'

/**
 * A mutable working copy of a ChainState, private to one transition: the block or transaction
 * being applied writes here, and `finish()` returns the new immutable state. The input state is
 * never modified.
 */
export class StateDraft {
  chainId: string
  height: number
  lastBlockHash: string
  lastBlockTime: number
  params: ChainParams
  readonly accounts: Map<Address, Account>
  readonly stakes: Map<string, bigint>
  unbonding: Unbonding[]
  readonly jailed: Set<Address>
  readonly models: Map<string, ModelRecord>
  readonly punished: Set<string>
  lastValidators: readonly Validator[]
  validators: readonly Validator[]
  nextValidators: readonly Validator[]
  readonly escrows: Map<Address, Escrow>
  readonly redeemed: Map<string, bigint>
  readonly hostCarry: Map<Address, bigint>
  readonly markets: Map<string, ModelMarket>
  totals: EconomyTotals
  readonly proposals: Map<number, GovProposal>
  nextProposalId: number

  constructor(s: ChainState) {
    this.chainId = s.chainId
    this.height = s.height
    this.lastBlockHash = s.lastBlockHash
    this.lastBlockTime = s.lastBlockTime
    this.params = s.params
    this.accounts = new Map(s.accounts)
    this.stakes = new Map(s.stakes)
    this.unbonding = [...s.unbonding]
    this.jailed = new Set(s.jailed)
    this.models = new Map(s.models)
    this.punished = new Set(s.punished)
    this.lastValidators = s.lastValidators
    this.validators = s.validators
    this.nextValidators = s.nextValidators
    this.escrows = new Map(s.escrows)
    this.redeemed = new Map(s.redeemed)
    this.hostCarry = new Map(s.hostCarry)
    this.markets = new Map(s.markets)
    this.totals = s.totals
    this.proposals = new Map(s.proposals)
    this.nextProposalId = s.nextProposalId
  }

  account(address: Address): Account {
    return this.accounts.get(address) ?? { balance: 0n, nonce: 0 }
  }

  /** Adds `delta` (may be negative) to a balance; asserts it stays non-negative. */
  credit(address: Address, delta: bigint): void {
    const a = this.account(address)
    const balance = a.balance + delta
    if (balance < 0n) throw new Error(`invariant: balance of ${address} would be negative`)
    this.accounts.set(address, { balance, nonce: a.nonce })
  }

  bumpNonce(address: Address): void {
    const a = this.account(address)
    this.accounts.set(address, { balance: a.balance, nonce: a.nonce + 1 })
  }

  stake(role: StakeRole, address: Address): bigint {
    return this.stakes.get(stakeKey(role, address)) ?? 0n
  }

  setStake(role: StakeRole, address: Address, amount: bigint): void {
    if (amount < 0n) throw new Error('invariant: negative stake')
    if (amount === 0n) this.stakes.delete(stakeKey(role, address))
    else this.stakes.set(stakeKey(role, address), amount)
  }

  payTreasury(amount: bigint): void {
    this.credit(TREASURY_ADDRESS, amount)
  }

  /** The validator set the current stakes give (under `params`, by default the current ones): eligible stakers by power, then address. */
  computeValidatorSet(params: ChainParams = this.params): Validator[] {
    const min = params.minValidatorStake
    const candidates: Validator[] = []
    for (const [key, power] of this.stakes) {
      if (!key.startsWith('validator:')) continue
      const address = key.slice('validator:'.length)
      if (power >= min && !this.jailed.has(address)) candidates.push({ address, power })
    }
    candidates.sort((a, b) => (a.power === b.power ? (a.address < b.address ? -1 : 1) : a.power > b.power ? -1 : 1))
    return candidates.slice(0, params.maxValidators).sort((a, b) => (a.address < b.address ? -1 : 1))
  }

  finish(): ChainState {
    return {
      chainId: this.chainId,
      height: this.height,
      lastBlockHash: this.lastBlockHash,
      lastBlockTime: this.lastBlockTime,
      params: this.params,
      accounts: this.accounts,
      stakes: this.stakes,
      unbonding: this.unbonding,
      jailed: this.jailed,
      models: this.models,
      punished: this.punished,
      lastValidators: this.lastValidators,
      validators: this.validators,
      nextValidators: this.nextValidators,
      escrows: this.escrows,
      redeemed: this.redeemed,
      hostCarry: this.hostCarry,
      markets: this.markets,
      totals: this.totals,
      proposals: this.proposals,
      nextProposalId: this.nextProposalId
    }
  }
}

/** Every unit that exists: balances, bonded stake, unbonding stake and escrows. */
export function totalSupply(s: ChainState): bigint {
  let total = 0n
  for (const a of s.accounts.values()) total += a.balance
  for (const v of s.stakes.values()) total += v
  for (const u of s.unbonding) total += u.amount
  for (const e of s.escrows.values()) total += e.balance
  return total
}
