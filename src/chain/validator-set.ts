import { encodeCanonical } from '../codec/index.ts'
import { type Address, type SignatureVerifier, sha256Hex } from '../crypto/index.ts'
import type { Commit } from './block.ts'
import type { Validator } from './state/types.ts'
import { verifyVote } from './vote.ts'

export function totalPower(validators: readonly Validator[]): bigint {
  return validators.reduce((s, v) => s + v.power, 0n)
}

/** More than two thirds of the total power: enough to commit. */
export function isQuorum(power: bigint, total: bigint): boolean {
  return power * 3n > total * 2n
}

/** More than one third of the total power: at least one honest validator among them. */
export function isOneThird(power: bigint, total: bigint): boolean {
  return power * 3n > total
}

export function validatorsHash(validators: readonly Validator[]): string {
  return sha256Hex(encodeCanonical(validators.map((v) => [v.address, v.power])))
}

export function powerOf(validators: readonly Validator[], address: Address): bigint {
  return validators.find((v) => v.address === address)?.power ?? 0n
}

/**
 * Checks that `commit` holds valid precommits for its block from more than two thirds of the
 * power of `validators`. Returns the reason it does not, or null.
 */
export function checkCommit(commit: Commit, validators: readonly Validator[], chainId: string, verifier: SignatureVerifier): string | null {
  const seen = new Set<Address>()
  let power = 0n
  for (const v of commit.precommits) {
    if (v.type !== 'precommit' || v.chainId !== chainId || v.height !== commit.height || v.round !== commit.round) {
      return `precommit of ${v.validator} is not for height ${commit.height} round ${commit.round}`
    }
    if (v.blockHash !== commit.blockHash) return `precommit of ${v.validator} names another block`
    if (seen.has(v.validator)) return `two precommits from ${v.validator}`
    const p = powerOf(validators, v.validator)
    if (p === 0n) return `${v.validator} is not a validator at height ${commit.height}`
    if (!verifyVote(v, verifier)) return `precommit signature of ${v.validator} does not verify`
    seen.add(v.validator)
    power += p
  }
  if (!isQuorum(power, totalPower(validators)))
    return `precommits hold ${power} of ${totalPower(validators)} power, not more than two thirds`
  return null
}
