import { createHash } from 'node:crypto'
import type { Validator } from '../chain/index.ts'
import type { Address } from '../crypto/index.ts'

/**
 * The proposer of (height, round): a stake-weighted draw seeded by SHA-256 of the chain id,
 * height and round. Every node computes the same answer from the same validator set; a
 * validator with twice the stake proposes twice as often, and nobody can steer the draw (the
 * seed does not depend on block contents). Validators must be in canonical (address) order.
 */
export function proposerFor(chainId: string, validators: readonly Validator[], height: number, round: number): Address {
  const total = validators.reduce((s, v) => s + v.power, 0n)
  if (total === 0n) throw new Error('invariant: empty validator set')
  const digest = createHash('sha256').update(`${chainId}\u0000${height}\u0000${round}`).digest()
  let ticket = BigInt(`0x${digest.toString('hex')}`) % total
  for (const v of validators) {
    if (ticket < v.power) return v.address
    ticket -= v.power
  }
  throw new Error('invariant: proposer draw fell through')
}
