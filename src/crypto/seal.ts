import { createHash, type webcrypto } from 'node:crypto'
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305'
import { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { encodeCanonical } from '../codec/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { AEAD_TAG_BYTES, aeadOpen, aeadSeal } from './aead.ts'
import type { Address, SignatureVerifier, Signer } from './signing.ts'

/**
 * End-to-end sealing between an edge and a host, above libp2p's per-hop encryption.
 *
 * A host has an X25519 key derived from its libp2p Ed25519 seed, and binds it to its identity
 * with an Ed25519 signature ({@link bindSealKey}); an edge checks that binding against the
 * host's peer id before trusting the key. Per session (one long-lived stream), the edge runs
 * HPKE base mode (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to
 * the host's key, and both sides take two keys from the HPKE exporter, one per direction. Each
 * message (a box of frames, `src/inference/protocol.ts`) is then sealed with ChaCha20-Poly1305
 * under its direction's key, with a nonce made of a per-direction counter: the stream delivers
 * messages in order, so both ends count alike, and one replayed, dropped or reordered fails to
 * open. The caller's associated data goes in too.
 */

export type SealErrorCode = 'SEAL_BAD_KEY' | 'SEAL_OPEN_FAILED' | 'SEAL_EXHAUSTED'

export class SealError extends LlmeshError<SealErrorCode> {}

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() })
const KEY_DERIVATION_LABEL = 'llmesh/seal-key/1'
const BINDING_DOMAIN = 'llmesh/seal-key-binding/1'
const textEncoder = new TextEncoder()
/** X25519 public keys and HPKE encapsulated keys are 32 bytes. */
export const SEAL_KEY_BYTES = 32
/** ChaCha20-Poly1305 adds a 16-byte tag to every sealed message. */
export const SEAL_OVERHEAD_BYTES = AEAD_TAG_BYTES

export interface SealKeyPair {
  /** Raw X25519 public key (32 bytes): what the host advertises. */
  publicKey: Uint8Array
  privateKey: webcrypto.CryptoKey
}

/** The host's X25519 key pair, derived from its 32-byte Ed25519 seed (so it needs no file of its own). */
export async function deriveSealKeyPair(ed25519Seed: Uint8Array): Promise<SealKeyPair> {
  const ikm = createHash('sha256').update(KEY_DERIVATION_LABEL).update(ed25519Seed).digest()
  const pair = await suite.kem.deriveKeyPair(new Uint8Array(ikm).buffer)
  return { publicKey: new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey)), privateKey: pair.privateKey }
}

function bindingMessage(peer: Address, key: Uint8Array): Uint8Array {
  return encodeCanonical({ domain: BINDING_DOMAIN, peer, key })
}

/** The host's signature binding its sealing key to its identity. */
export function bindSealKey(signer: Signer, key: Uint8Array): Uint8Array {
  return signer.sign(bindingMessage(signer.address, key))
}

/** True if `sig` is `peer`'s signature binding `key` (a 32-byte X25519 key). */
export function verifySealKey(verifier: SignatureVerifier, peer: Address, key: Uint8Array, sig: Uint8Array): boolean {
  return key.byteLength === SEAL_KEY_BYTES && verifier.verify(peer, bindingMessage(peer, key), sig)
}

const MAX_COUNTER = 2n ** 64n - 1n

/** One direction of a session: its key and its message counter. */
class Direction {
  private counter = 0n
  private readonly nonceBytes = Buffer.alloc(12)
  constructor(readonly key: Uint8Array) {}

  /** The nonce of the next message (4 zero bytes, then the counter, big-endian); each call uses one up. */
  nonce(): Buffer {
    if (this.counter >= MAX_COUNTER) throw new SealError('SEAL_EXHAUSTED', 'the session sealed 2^64 messages; open a new one')
    this.nonceBytes.writeBigUInt64BE(this.counter, 4)
    this.counter++
    return this.nonceBytes
  }
}

/**
 * The two directions of a sealed session. `seal` and `open` are synchronous, so messages are
 * sealed in exactly the order they are written, and must be opened in the order they arrive.
 */
export class SealedChannel {
  private readonly out: Direction
  private readonly in: Direction

  constructor(outKey: Uint8Array, inKey: Uint8Array) {
    this.out = new Direction(outKey)
    this.in = new Direction(inKey)
  }

  /** The ciphertext then the 16-byte tag, as RFC 8439 lays them out (ChaCha20-Poly1305 on libsodium, aead.ts). */
  seal(plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
    return aeadSeal(this.out.key, this.out.nonce(), plaintext, aad)
  }

  /** Opens the next message of the other direction; throws {@link SealError} if it was forged, replayed or reordered. */
  open(ciphertext: Uint8Array, aad: Uint8Array): Uint8Array {
    const nonce = this.in.nonce() // a failed open uses up its position too
    try {
      return aeadOpen(this.in.key, nonce, ciphertext, aad) // throws unless the tag matches
    } catch (err) {
      throw new SealError('SEAL_OPEN_FAILED', 'a sealed message failed to open (forged, replayed or out of order)', { cause: err })
    }
  }
}

const REQUEST_LABEL = textEncoder.encode('llmesh edge->host')
const RESPONSE_LABEL = textEncoder.encode('llmesh host->edge')

/**
 * HPKE `info` binding a session to its two ends. It is the SHA-256 of their description: with
 * @hpke/core 1.9.0 an `info` above ~100 bytes made sender and recipient derive different keys
 * (seen here with two peer ids), and a fixed 32 bytes stays clear of that.
 */
function sessionInfo(edge: Address, host: Address): Uint8Array {
  return new Uint8Array(
    createHash('sha256')
      .update(encodeCanonical({ protocol: 'llmesh/seal/1', edge, host }))
      .digest()
  )
}

/** Edge side: seals a new session to the host's key. Send `enc` to the host. */
export async function openSealedSession(
  hostKey: Uint8Array,
  edge: Address,
  host: Address
): Promise<{ enc: Uint8Array; channel: SealedChannel }> {
  if (hostKey.byteLength !== SEAL_KEY_BYTES) throw new SealError('SEAL_BAD_KEY', `a sealing key is ${SEAL_KEY_BYTES} bytes`)
  let recipientPublicKey: webcrypto.CryptoKey
  try {
    recipientPublicKey = await suite.kem.deserializePublicKey(hostKey.slice().buffer)
  } catch (err) {
    throw new SealError('SEAL_BAD_KEY', 'the host sealing key is not an X25519 public key', { cause: err })
  }
  const ctx = await suite.createSenderContext({ recipientPublicKey, info: sessionInfo(edge, host).slice().buffer })
  const request = new Uint8Array(await ctx.export(REQUEST_LABEL.slice().buffer, 32))
  const response = new Uint8Array(await ctx.export(RESPONSE_LABEL.slice().buffer, 32))
  return { enc: new Uint8Array(ctx.enc), channel: new SealedChannel(request, response) }
}

/** Host side: accepts a session an edge opened with `enc`. */
export async function acceptSealedSession(keys: SealKeyPair, enc: Uint8Array, edge: Address, host: Address): Promise<SealedChannel> {
  if (enc.byteLength !== SEAL_KEY_BYTES) throw new SealError('SEAL_BAD_KEY', `an encapsulated key is ${SEAL_KEY_BYTES} bytes`)
  let ctx: Awaited<ReturnType<typeof suite.createRecipientContext>>
  try {
    ctx = await suite.createRecipientContext({
      recipientKey: keys.privateKey,
      enc: enc.slice().buffer,
      info: sessionInfo(edge, host).slice().buffer
    })
  } catch (err) {
    throw new SealError('SEAL_BAD_KEY', 'the encapsulated key was refused', { cause: err })
  }
  const request = new Uint8Array(await ctx.export(REQUEST_LABEL.slice().buffer, 32))
  const response = new Uint8Array(await ctx.export(RESPONSE_LABEL.slice().buffer, 32))
  return new SealedChannel(response, request)
}
