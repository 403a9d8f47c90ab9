// The part of sodium-native 5 (libsodium bindings) that src/crypto/ed25519.ts uses. The package
// ships no types, and @types/sodium-native describes version 2 with Buffer-only arguments.
declare module 'sodium-native' {
  const sodium: {
    crypto_sign_BYTES: number
    crypto_sign_PUBLICKEYBYTES: number
    crypto_sign_SECRETKEYBYTES: number
    crypto_sign_SEEDBYTES: number
    crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
    crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
    crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
  }
  export default sodium
}
