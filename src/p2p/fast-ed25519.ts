import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import type { AbortOptions, PrivateKey, PublicKey } from '@libp2p/interface'
import { ed25519Sign, ed25519Verify } from '../crypto/ed25519.ts'

/**
 * libp2p's Ed25519 keys sign and verify with libsodium (src/crypto/ed25519.ts) from the moment this
 * module is imported (by create-libp2p.ts): noise handshakes, gossipsub's message signatures,
 * identify's signed peer records, DHT records. `@libp2p/crypto` 5.1.23 rebuilds a node:crypto key
 * object from JWK on every call and then runs OpenSSL's Ed25519; under the chain's load gossipsub's
 * per-message check was about a fifth of a devnet node's CPU (docs/performance.md, Chain,
 * 2026-11-26). The signatures are the same bytes; verification is libsodium's (see ed25519.ts).
 */

type Ed25519Private = PrivateKey & { raw: Uint8Array }
type Ed25519Public = PublicKey & { raw: Uint8Array }
type Data = Parameters<PrivateKey['sign']>[0]

const bytes = (data: Data): Uint8Array => (data instanceof Uint8Array ? data : data.subarray())

// a key only to reach the classes (a 64-byte raw key is an Ed25519 one; its bytes are never used)
const sample = privateKeyFromRaw(new Uint8Array(64))
const privatePrototype = Object.getPrototypeOf(sample) as Ed25519Private
const publicPrototype = Object.getPrototypeOf(sample.publicKey) as Ed25519Public

export const originalEd25519Sign = privatePrototype.sign
export const originalEd25519Verify = publicPrototype.verify

privatePrototype.sign = function sign(this: Ed25519Private, message: Data, options?: AbortOptions) {
  options?.signal?.throwIfAborted()
  return ed25519Sign(this.raw, bytes(message))
}

publicPrototype.verify = function verify(this: Ed25519Public, data: Data, sig: Uint8Array, options?: AbortOptions) {
  options?.signal?.throwIfAborted()
  return ed25519Verify(this.raw, bytes(data), sig)
}
