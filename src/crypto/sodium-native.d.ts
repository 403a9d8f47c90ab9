// The part of sodium-native 5 (libsodium bindings) that src/crypto uses (ed25519.ts, aead.ts). The package
// ships no types, and @types/sodium-native describes version 2 with Buffer-only arguments.
declare module 'sodium-native' {
  const sodium: {
    crypto_sign_SECRETKEYBYTES: number
    crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
    crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
    crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
    /** Writes ciphertext ‖ 16-byte tag to `ciphertext` (message length + 16 bytes); returns the bytes written. */
    crypto_aead_chacha20poly1305_ietf_encrypt(
      ciphertext: Uint8Array,
      message: Uint8Array,
      additionalData: Uint8Array | null,
      nsec: null,
      nonce: Uint8Array,
      key: Uint8Array
    ): number
    /** Writes the plaintext to `message` (ciphertext length − 16 bytes); throws unless the tag matches. */
    crypto_aead_chacha20poly1305_ietf_decrypt(
      message: Uint8Array,
      nsec: null,
      ciphertext: Uint8Array,
      additionalData: Uint8Array | null,
      nonce: Uint8Array,
      key: Uint8Array
    ): number
  }
  export default sodium
}
