import { sha256Hex } from '../../crypto/index.ts'
import { encodeState } from './snapshot.ts'
import type { ChainState } from './types.ts'

/**
 * The state root: SHA-256 of the state's canonical snapshot (every collection in a fixed order).
 * Two nodes have the same root exactly when they hold the same state. (A Merkle tree with
 * per-account proofs for light clients can replace this without changing callers.)
 */
export function stateRoot(s: ChainState): string {
  return sha256Hex(encodeState(s))
}
