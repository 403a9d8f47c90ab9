/**
 * The arithmetic of the MESH economy, pure and in integers (bigint): the price of a request,
 * how a model's demand multiplier moves each block, and how a redeemed payment splits between
 * the host, the validators and the treasury. No rounding here ever creates or loses a unit.
 */

/** Fixed-point scale of a demand multiplier: `MULTIPLIER_ONE` is 1×. */
export const MULTIPLIER_ONE = 1_000_000n
/** Basis points: 10,000 is 100%. */
export const BPS_ONE = 10_000n
/** A model's complexity is its parameter count in these units, at least 1 (a 7B model is 7). */
export const COMPLEXITY_UNIT_PARAMETERS = 1_000_000_000n
/** Most a demand multiplier moves in one block, in basis points (12.5%, as EIP-1559's base fee). */
export const MAX_MULTIPLIER_CHANGE_BPS = 1_250n

/** `complexity(model)`: ceil(parameters / 1e9), at least 1. */
export function complexityOf(parameters: bigint): bigint {
  if (parameters <= 0n) return 1n
  return (parameters + COMPLEXITY_UNIT_PARAMETERS - 1n) / COMPLEXITY_UNIT_PARAMETERS
}

export interface PriceInput {
  /** Smallest units per token of a complexity-1 model at multiplier 1×. */
  baseFee: bigint
  /** Fixed point, `MULTIPLIER_ONE` = 1×. */
  multiplier: bigint
  complexity: bigint
  /** Tokens the model read (prompt) and wrote (completion): both cost the same. */
  promptTokens: number
  completionTokens: number
}

/**
 * The price of a request: `baseFee × multiplier × complexity × (promptTokens + completionTokens)`,
 * with the multiplier's fixed point divided out at the end and rounded up, so a request that
 * used any tokens at a non-zero base fee never costs 0.
 */
export function requestPrice(p: PriceInput): bigint {
  const tokens = BigInt(Math.max(0, p.promptTokens)) + BigInt(Math.max(0, p.completionTokens))
  const scaled = p.baseFee * p.multiplier * p.complexity * tokens
  return (scaled + MULTIPLIER_ONE - 1n) / MULTIPLIER_ONE
}

export interface MultiplierBounds {
  min: bigint
  max: bigint
}

/**
 * The multiplier for the next block, EIP-1559 style: `m × (1 + 12.5% × (served − target) / target)`,
 * so it rises when the model served more than its target load in the block and falls when less,
 * by at most 12.5% per block, and always within `bounds`. `target` 0 leaves it unchanged.
 * A multiplier that would not move by at least one unit while load is off target moves by one.
 */
export function nextMultiplier(current: bigint, served: bigint, target: bigint, bounds: MultiplierBounds): bigint {
  const clamp = (m: bigint): bigint => (m < bounds.min ? bounds.min : m > bounds.max ? bounds.max : m)
  if (target <= 0n || served === target) return clamp(current)
  const gap = served > target ? served - target : target - served
  // the change is proportional to the gap, and at most MAX_MULTIPLIER_CHANGE_BPS of the current value
  let delta = (current * MAX_MULTIPLIER_CHANGE_BPS * (gap > target ? target : gap)) / (BPS_ONE * target)
  if (delta === 0n) delta = 1n
  return clamp(served > target ? current + delta : current - delta)
}

export interface SplitShares {
  hostBps: bigint
  validatorsBps: bigint
  treasuryBps: bigint
}

export const DEFAULT_SPLIT: SplitShares = { hostBps: 7_000n, validatorsBps: 2_000n, treasuryBps: 1_000n }

export interface Split {
  host: bigint
  /** What rounding kept from the host this time, in 1/10,000ths of a unit: pass it to its next split. */
  hostCarry: bigint
  /** Per validator address, pro rata to stake. */
  validators: Map<string, bigint>
  treasury: bigint
}

/**
 * Splits a redeemed amount. Rounding rule: the host gets floor((amount × hostBps + hostCarry) /
 * 10,000), where `hostCarry` (0 ≤ carry < 10,000) is what rounding kept from this host at its
 * previous split, and the new remainder is its next carry; so, while the split is unchanged, a
 * host's earnings total exactly floor(hostBps × everything it redeemed / 10,000), however its
 * redemptions were batched. Each validator gets floor(validatorsPart × stake / totalStake) of the
 * validators' part floor(amount × validatorsBps / 10,000). The treasury gets everything else (its
 * own share plus every rounding remainder, less the host's carried units when they come due; never
 * below zero, since the host's part is at most ⌈amount × hostBps / 10,000⌉). So the parts always
 * add up to exactly `amount`. With no validator stake, the validators' part goes to the treasury.
 */
export function splitPayment(
  amount: bigint,
  shares: SplitShares,
  validators: ReadonlyArray<{ address: string; stake: bigint }>,
  hostCarry = 0n
): Split {
  if (amount < 0n) throw new RangeError('a payment is not negative')
  if (shares.hostBps + shares.validatorsBps + shares.treasuryBps !== BPS_ONE || shares.hostBps < 0n || shares.validatorsBps < 0n) {
    throw new RangeError('split shares must be non-negative and add up to 10,000 basis points')
  }
  if (hostCarry < 0n || hostCarry >= BPS_ONE) throw new RangeError('a host carry is within [0, 10,000)')
  const hostScaled = amount * shares.hostBps + hostCarry
  const host = hostScaled / BPS_ONE
  const validatorsPart = (amount * shares.validatorsBps) / BPS_ONE
  const totalStake = validators.reduce((sum, v) => sum + (v.stake > 0n ? v.stake : 0n), 0n)
  const perValidator = new Map<string, bigint>()
  let paid = 0n
  if (totalStake > 0n) {
    for (const v of validators) {
      if (v.stake <= 0n) continue
      const share = (validatorsPart * v.stake) / totalStake
      if (share === 0n) continue
      perValidator.set(v.address, (perValidator.get(v.address) ?? 0n) + share)
      paid += share
    }
  }
  return { host, hostCarry: hostScaled % BPS_ONE, validators: perValidator, treasury: amount - host - paid }
}
