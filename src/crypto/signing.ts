import { createHash } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { ed25519Sign, ed25519Verify, keyPairFromSeed } from './ed25519.ts'

/**
 * An account address is the string form of an Ed25519 libp2p peer id (`12D3KooW...`). It embeds
 * the public key, so a signature can be checked from the address alone, and a node's peer id is
 * its account.
 */
export type Address = string

const MAX_CACHED_KEYS = 10_000

/** A signer for one Ed25519 key (deterministic, RFC 8032; libsodium, see ed25519.ts). */
export interface Signer {
  readonly address: Address
  sign(message: Uint8Array): Uint8Array
}

export function signerFromPrivateKey(key: PrivateKey): Signer {
  if (key.type !== 'Ed25519') throw new Error(`expected an Ed25519 key, got ${key.type}`)
  return signerFromSeed(key.raw.subarray(0, 32), peerIdFromPrivateKey(key).toString())
}

/** A signer from a 32-byte Ed25519 seed (tests and simulations derive keys this way). */
export function signerFromSeed(seed: Uint8Array, address?: Address): Signer {
  const { publicKey, secretKey } = keyPairFromSeed(seed)
  return { address: address ?? addressFromPublicKey(publicKey), sign: (message) => ed25519Sign(secretKey, message) }
}

/** The address of a raw 32-byte Ed25519 public key. */
export function addressFromPublicKey(raw: Uint8Array): Address {
  // an Ed25519 peer id is the identity multihash of the protobuf-encoded public key
  const protobuf = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x20]), raw])
  const multihash = Buffer.concat([Buffer.from([0x00, protobuf.length]), protobuf])
  return base58btc(multihash)
}

/**
 * Verifies Ed25519 signatures by address, caching the parsed public keys (bounded).
 * Holds no global state: each chain or node owns its verifier.
 */
export class SignatureVerifier {
  private readonly keys = new Map<Address, Uint8Array | null>()
  private readonly verified = new Set<string>()
  private readonly cacheSize: number

  /**
   * @param cacheSize how many successful verifications to remember (0: none). A node checks each
   * transaction when it enters the mempool and again inside every block that carries it; the
   * cache key covers the address, the signature and a hash of the message, so a remembered
   * result can never vouch for different bytes.
   */
  constructor(cacheSize = 0) {
    this.cacheSize = cacheSize
  }

  /** The raw public key of `address`, or null if it is not an Ed25519 peer id. */
  publicKey(address: Address): Uint8Array | null {
    let key = this.keys.get(address)
    if (key === undefined) {
      key = parseAddress(address)
      if (this.keys.size >= MAX_CACHED_KEYS) this.keys.clear()
      this.keys.set(address, key)
    }
    return key
  }

  isAddress(address: Address): boolean {
    return this.publicKey(address) != null
  }

  verify(address: Address, message: Uint8Array, signature: Uint8Array): boolean {
    const key = this.publicKey(address)
    if (key == null || signature.byteLength !== 64) return false
    if (this.cacheSize === 0) return ed25519Verify(key, message, signature)
    const id = `${address}:${Buffer.from(signature).toString('base64')}:${createHash('sha256').update(message).digest('base64')}`
    if (this.verified.has(id)) return true
    const ok = ed25519Verify(key, message, signature)
    if (ok) {
      if (this.verified.size >= this.cacheSize) this.verified.clear()
      this.verified.add(id)
    }
    return ok
  }
}

function parseAddress(address: Address): Uint8Array | null {
  if (typeof address !== 'string' || address.length > 64) return null
  try {
    const peerId = peerIdFromString(address)
    if (peerId.type !== 'Ed25519' || peerId.publicKey == null) return null
    return peerId.publicKey.raw
  } catch {
    return null
  }
}

/** SHA-256 of `bytes`, as lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

function base58btc(bytes: Uint8Array): string {
  let n = BigInt(`0x${Buffer.from(bytes).toString('hex')}`)
  let out = ''
  while (n > 0n) {
    out = ALPHABET[Number(n % 58n)] + out
    n /= 58n
  }
  for (const b of bytes) {
    if (b !== 0) break
    out = `1${out}`
  }
  return out
}
