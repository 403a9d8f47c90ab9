import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import sodium from 'sodium-native'

type Encrypt = ICryptoInterface['chaCha20Poly1305Encrypt']
type Decrypt = ICryptoInterface['chaCha20Poly1305Decrypt']
const TAG_BYTES = 16

/**
 * Noise's crypto with its ChaCha20-Poly1305 on libsodium (one native call per message): the rest
 * (X25519, SHA-256, HKDF) is the library's default. `@chainsafe/libp2p-noise` 17.0.0 seals a
 * message under 1,200 bytes with WebAssembly and a larger one with a node:crypto cipher object
 * made per message. The bytes are RFC 8439's either way (tested against the default crypto), so a
 * peer that runs the stock library reads them. A message is opened in place when noise gives a
 * `dst` over its own ciphertext, as it does on a stream (libsodium allows that).
 */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt: ((plaintext, nonce, ad, k) => {
    const plain = plaintext instanceof Uint8Array ? plaintext : plaintext.subarray()
    const sealed = new Uint8Array(plain.byteLength + TAG_BYTES)
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(sealed, plain, ad, null, nonce, k)
    return sealed
  }) satisfies Encrypt,
  chaCha20Poly1305Decrypt: ((ciphertext, nonce, ad, k, dst) => {
    const sealed = ciphertext instanceof Uint8Array ? ciphertext : ciphertext.subarray()
    if (sealed.byteLength < TAG_BYTES) throw new Error('Invalid chacha20poly1305 decryption')
    const plain = dst ?? new Uint8Array(sealed.byteLength - TAG_BYTES)
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(plain, null, sealed, ad, nonce, k)
    } catch {
      throw new Error('Invalid chacha20poly1305 decryption')
    }
    return plain
  }) satisfies Decrypt
}
