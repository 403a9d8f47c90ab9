import { encodeCanonical } from '../../codec/index.ts'
import { sha256Hex } from '../../crypto/index.ts'
import type { ChainState } from './types.ts'

const byKey = <T>(m: ReadonlyMap<string, T>): Array<[string, T]> => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

/**
 * The state root: SHA-256 of the canonical encoding of the whole state, with every collection in
 * a fixed order. Two nodes have the same root exactly when they hold the same state. (A Merkle
 * tree with per-account proofs for light clients can replace this without changing callers.)
 */
export function stateRoot(s: ChainState): string {
  return sha256Hex(
    encodeCanonical({
      chainId: s.chainId,
      height: s.height,
      lastBlockHash: s.lastBlockHash,
      lastBlockTime: s.lastBlockTime,
      params: s.params,
      accounts: byKey(s.accounts).map(([k, a]) => [k, a.balance, a.nonce]),
      stakes: byKey(s.stakes),
      unbonding: s.unbonding.map((u) => [u.address, u.role, u.amount, u.releaseHeight]),
      jailed: [...s.jailed].sort(),
      models: byKey(s.models).map(([, m]) => [m.cid, m.name, m.parent, m.parameters, m.owner, m.height]),
      punished: [...s.punished].sort(),
      lastValidators: s.lastValidators.map((v) => [v.address, v.power]),
      validators: s.validators.map((v) => [v.address, v.power]),
      nextValidators: s.nextValidators.map((v) => [v.address, v.power])
    })
  )
}
