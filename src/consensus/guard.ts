import type { Address } from '../crypto/index.ts'

/** What a validator last signed: it never signs anything earlier, or different at the same point. */
export interface SignedPoint {
  height: number
  round: number
  /** 0 proposal, 1 prevote, 2 precommit. */
  step: number
  blockHash: string | null
}

export const SIGN_STEP = { proposal: 0, prevote: 1, precommit: 2 } as const

/**
 * The double-sign guard: `allow` answers whether signing `next` is safe given what was last
 * signed, and a caller that signs must first make `next` durable (`record`) so a crash right
 * after cannot lead to a conflicting signature on restart.
 */
export function allowSign(last: SignedPoint | null, next: SignedPoint): boolean {
  if (last == null) return true
  if (next.height !== last.height) return next.height > last.height
  if (next.round !== last.round) return next.round > last.round
  if (next.step !== last.step) return next.step > last.step
  return next.blockHash === last.blockHash // the very same message again: re-signing is harmless
}

export interface DoubleSignGuard {
  readonly validator: Address
  last(): SignedPoint | null
  /** Durably records `point` as the last signed; must not return before it is on disk. */
  record(point: SignedPoint): void
}

/** A guard kept in memory and in a caller-provided durable cell (a file, or a simulated disk). */
export class StoredGuard implements DoubleSignGuard {
  readonly validator: Address
  private current: SignedPoint | null
  private readonly persist: (point: SignedPoint) => void

  constructor(validator: Address, stored: SignedPoint | null, persist: (point: SignedPoint) => void) {
    this.validator = validator
    this.current = stored
    this.persist = persist
  }

  last(): SignedPoint | null {
    return this.current
  }

  record(point: SignedPoint): void {
    this.persist(point)
    this.current = point
  }
}
