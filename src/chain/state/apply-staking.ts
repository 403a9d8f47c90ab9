import type { Address, SignatureVerifier } from '../../crypto/index.ts'
import type { StakeRole } from '../../params/index.ts'
import { isEquivocation, type SignedVote, verifyVote } from '../vote.ts'
import type { StateDraft } from './draft.ts'
import { TxError } from './types.ts'

function minStake(d: StateDraft, role: StakeRole): bigint {
  return role === 'validator' ? d.params.minValidatorStake : d.params.minHostStake
}

/** Bonds `amount` from the balance (fee already paid). The total bond must reach the role's minimum. */
export function applyStake(d: StateDraft, from: Address, role: StakeRole, amount: bigint): void {
  if (amount <= 0n) throw new TxError('ZERO_AMOUNT', 'stake amount must be positive')
  if (role === 'validator' && d.jailed.has(from)) {
    throw new TxError('JAILED', `${from} was removed from the validator set for double-signing and cannot stake as a validator`)
  }
  const balance = d.account(from).balance
  if (balance < amount) throw new TxError('INSUFFICIENT_BALANCE', `balance ${balance} is less than the stake ${amount}`)
  const total = d.stake(role, from) + amount
  const min = minStake(d, role)
  if (total < min) throw new TxError('BELOW_MIN_STAKE', `a ${role} stake must total at least ${min}; this would make it ${total}`)
  d.credit(from, -amount)
  d.setStake(role, from, total)
}

/** Starts unbonding `amount`: it stays slashable for `unbondingBlocks`, then returns to the balance. */
export function applyUnstake(d: StateDraft, from: Address, role: StakeRole, amount: bigint, height: number): void {
  if (amount <= 0n) throw new TxError('ZERO_AMOUNT', 'unstake amount must be positive')
  const bonded = d.stake(role, from)
  if (bonded < amount) throw new TxError('INSUFFICIENT_STAKE', `${role} stake is ${bonded}, less than ${amount}`)
  const rest = bonded - amount
  const min = minStake(d, role)
  if (rest !== 0n && rest < min) {
    throw new TxError('BELOW_MIN_STAKE', `the remaining ${role} stake ${rest} would be under the minimum ${min}; unstake all of it or less`)
  }
  d.setStake(role, from, rest)
  d.unbonding.push({ address: from, role, amount, releaseHeight: height + d.params.unbondingBlocks })
}

/** Returns every unbonding entry due at `height` to its owner's balance. */
export function releaseUnbonding(d: StateDraft, height: number): void {
  const keep = []
  for (const u of d.unbonding) {
    if (u.releaseHeight <= height) d.credit(u.address, u.amount)
    else keep.push(u)
  }
  d.unbonding = keep
}

/**
 * Punishes a double-signer on proof of two conflicting signed votes: slashes `slashFractionBps`
 * of its validator stake (bonded and unbonding) to the treasury, unbonds the rest and jails it.
 */
export function applyEvidence(d: StateDraft, a: SignedVote, b: SignedVote, height: number, verifier: SignatureVerifier): void {
  if (!isEquivocation(a, b)) {
    throw new TxError('BAD_EVIDENCE', 'the two votes must be from one validator, for one height, round and type, naming different blocks')
  }
  if (a.chainId !== d.chainId) throw new TxError('BAD_EVIDENCE', `the votes are for chain ${a.chainId}`)
  if (a.height > height) throw new TxError('BAD_EVIDENCE', `the votes are for future height ${a.height}`)
  if (height - a.height > d.params.evidenceMaxAgeBlocks) {
    throw new TxError(
      'BAD_EVIDENCE',
      `the votes are ${height - a.height} blocks old, over the ${d.params.evidenceMaxAgeBlocks}-block limit`
    )
  }
  if (!verifyVote(a, verifier) || !verifyVote(b, verifier)) throw new TxError('BAD_EVIDENCE', 'a vote signature does not verify')
  const key = `${a.validator}:${a.height}`
  if (d.punished.has(key)) throw new TxError('DUPLICATE_EVIDENCE', `${a.validator} was already punished for height ${a.height}`)
  const offender = a.validator
  const bonded = d.stake('validator', offender)
  const unbonding = d.unbonding.filter((u) => u.address === offender && u.role === 'validator')
  const total = bonded + unbonding.reduce((s, u) => s + u.amount, 0n)
  if (total === 0n) throw new TxError('BAD_EVIDENCE', `${offender} has no validator stake to slash`)

  let slash = (total * BigInt(d.params.slashFractionBps)) / 10_000n
  d.punished.add(key)
  d.jailed.add(offender)
  // take the slash from the bond first, then from unbonding entries; the rest of the bond unbonds
  const fromBond = slash < bonded ? slash : bonded
  slash -= fromBond
  d.payTreasury(fromBond)
  // unbonding entries are shared with the input state: replace them, never modify them
  d.unbonding = d.unbonding.flatMap((u) => {
    if (slash === 0n || u.address !== offender || u.role !== 'validator') return [u]
    const take = slash < u.amount ? slash : u.amount
    slash -= take
    d.payTreasury(take)
    return u.amount === take ? [] : [{ ...u, amount: u.amount - take }]
  })
  d.setStake('validator', offender, 0n)
  const rest = bonded - fromBond
  if (rest > 0n) d.unbonding.push({ address: offender, role: 'validator', amount: rest, releaseHeight: height + d.params.unbondingBlocks })
}
