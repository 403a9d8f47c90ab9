import sodium from 'sodium-native'

/**
 * Ed25519 (RFC 8032) on libsodium, through sodium-native's prebuilt addon. Every signature of the
 * project goes through here: transactions, votes, receipts, vouchers, the binding of a host's
 * sealing key, and (src/p2p/fast-ed25519.ts) libp2p's own (noise handshakes, gossipsub messages).
 *
 * Why not node:crypto: with the OpenSSL 3.0 of Node 20 on this machine one verification took
 * ~175 µs and one signature ~65 µs; libsodium takes ~98 µs and ~30 µs (docs/performance.md,
 * Chain, 2026-11-26). Signatures are the same bytes (Ed25519 is deterministic).
 *
 * Verification is libsodium's, which is stricter than RFC 8032's minimum: it also refuses a
 * signature whose R, or a public key, is of small order, and a non-canonical public key. No honest
 * signer produces those. Every node runs this same check, so they all agree on which transactions
 * and votes are valid.
 */

export const SEED_BYTES = 32
export const PUBLIC_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64

/** An Ed25519 key pair from its 32-byte seed: libsodium's 64-byte secret key (seed ‖ public key). */
export function keyPairFromSeed(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array } {
  if (seed.byteLength !== SEED_BYTES) throw new Error('an Ed25519 seed is 32 bytes')
  const publicKey = new Uint8Array(PUBLIC_KEY_BYTES)
  const secretKey = new Uint8Array(sodium.crypto_sign_SECRETKEYBYTES)
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  return { publicKey, secretKey }
}

/** Signs `message` with a 64-byte secret key from keyPairFromSeed. */
export function ed25519Sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  const signature = new Uint8Array(SIGNATURE_BYTES)
  sodium.crypto_sign_detached(signature, message, secretKey)
  return signature
}

/** Whether `signature` is `publicKey`'s on `message`; false (never a throw) for wrong-sized input. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.byteLength !== PUBLIC_KEY_BYTES || signature.byteLength !== SIGNATURE_BYTES) return false
  return sodium.crypto_sign_verify_detached(signature, message, publicKey)
}
