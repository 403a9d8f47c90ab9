import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { aeadOpen, aeadSeal } from '../crypto/aead.ts'

type Encrypt = ICryptoInterface['chaCha20Poly1305Encrypt']
type Decrypt = ICryptoInterface['chaCha20Poly1305Decrypt']

/**
 * Noise's crypto with its ChaCha20-Poly1305 on libsodium (src/crypto/aead.ts: one native call per
 * message); the rest (X25519, SHA-256, HKDF) is the library's default. `@chainsafe/libp2p-noise`
 * 17.0.0 seals a message under 1,200 bytes with WebAssembly and a larger one with a node:crypto
 * cipher object made per message. The bytes are RFC 8439's either way (tested against the default
 * crypto), so a peer that runs the stock library reads them. A message is opened in place when
 * noise gives a `dst` over its own ciphertext, as it does on a stream.
 */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt: ((plaintext, nonce, ad, k) =>
    aeadSeal(k, nonce, plaintext instanceof Uint8Array ? plaintext : plaintext.subarray(), ad)) satisfies Encrypt,
  chaCha20Poly1305Decrypt: ((ciphertext, nonce, ad, k, dst) => {
    try {
      return aeadOpen(k, nonce, ciphertext instanceof Uint8Array ? ciphertext : ciphertext.subarray(), ad, dst)
    } catch {
      throw new Error('Invalid chacha20poly1305 decryption')
    }
  }) satisfies Decrypt
}
