/**
 * Crypto: keys, signatures, hashes and end-to-end sealing (HPKE). Owns the node's Ed25519 identity key on disk; the same
 * key is its libp2p peer id and, once the chain arrives, its account.
 */

export type { IdentityErrorCode } from './identity.ts'
export { createIdentityKey, IdentityKeyError, loadIdentityKey } from './identity.ts'
export type { SealErrorCode, SealKeyPair } from './seal.ts'
export {
  acceptSealedSession,
  bindSealKey,
  deriveSealKeyPair,
  openSealedSession,
  SEAL_KEY_BYTES,
  SEAL_OVERHEAD_BYTES,
  SealError,
  SealedChannel,
  verifySealKey
} from './seal.ts'
export type { Address, Signer } from './signing.ts'
export { addressFromPublicKey, SignatureVerifier, sha256Hex, signerFromPrivateKey, signerFromSeed } from './signing.ts'
