import sodium from 'sodium-native'

/**
 * ChaCha20-Poly1305 (RFC 8439, 12-byte nonces) on libsodium: one native call per message, no
 * cipher object. Used for the end-to-end boxes (seal.ts) and for noise's own messages
 * (src/p2p/noise-crypto.ts). With node:crypto a cipher object alone cost ~10 µs per message here,
 * and the WebAssembly cipher noise ships ~5–20 µs per message of 50–1,000 bytes
 * (docs/performance.md, Gateway). The bytes are RFC 8439's whichever implementation makes them
 * (tested against node:crypto and noise's default crypto).
 */

export const AEAD_TAG_BYTES = 16

/** `plain` sealed: ciphertext then the 16-byte tag. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array, aad: Uint8Array): Uint8Array {
  const sealed = new Uint8Array(plain.byteLength + AEAD_TAG_BYTES)
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(sealed, plain, aad, null, nonce, key)
  return sealed
}

/**
 * Opens `sealed` into `dst` (a new array if none; `dst` may start at `sealed`'s first byte, to open
 * in place); throws unless it is at least a tag long and the tag matches.
 */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array, dst?: Uint8Array): Uint8Array {
  if (sealed.byteLength < AEAD_TAG_BYTES) throw new Error(`${sealed.byteLength} bytes is shorter than the tag`)
  const plain = dst ?? new Uint8Array(sealed.byteLength - AEAD_TAG_BYTES)
  sodium.crypto_aead_chacha20poly1305_ietf_decrypt(plain, null, sealed, aad, nonce, key)
  return plain
}
