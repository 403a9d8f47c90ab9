import assert from 'node:assert/strict'
import { createCipheriv, randomBytes } from 'node:crypto'
import { describe, it, test } from 'node:test'
import {
  acceptSealedSession,
  bindSealKey,
  deriveSealKeyPair,
  openSealedSession,
  SealError,
  SealedChannel,
  SignatureVerifier,
  signerFromSeed,
  verifySealKey
} from '../../src/crypto/index.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

describe('end-to-end sealing', () => {
  it('derives the same key from the same seed and binds it to the identity', async () => {
    const seed = randomBytes(32)
    const a = await deriveSealKeyPair(seed)
    const b = await deriveSealKeyPair(seed)
    assert.deepEqual(a.publicKey, b.publicKey)
    const other = await deriveSealKeyPair(randomBytes(32))
    assert.notDeepEqual(a.publicKey, other.publicKey)

    const host = signerFromSeed(seed)
    const stranger = signerFromSeed(randomBytes(32))
    const verifier = new SignatureVerifier()
    const sig = bindSealKey(host, a.publicKey)
    assert.equal(verifySealKey(verifier, host.address, a.publicKey, sig), true)
    // a key bound by someone else, or another key under this binding, does not verify
    assert.equal(verifySealKey(verifier, stranger.address, a.publicKey, sig), false)
    assert.equal(verifySealKey(verifier, host.address, other.publicKey, sig), false)
    assert.equal(verifySealKey(verifier, host.address, a.publicKey, bindSealKey(stranger, a.publicKey)), false)
  })

  it('opens a session both ways; a forged, replayed or reordered frame fails', async () => {
    const hostSigner = signerFromSeed(randomBytes(32))
    const keys = await deriveSealKeyPair(randomBytes(32))
    const edge = 'edge-address'
    const { enc: encap, channel: edgeSide } = await openSealedSession(keys.publicKey, edge, hostSigner.address)
    const hostSide = await acceptSealedSession(keys, encap, edge, hostSigner.address)
    const aad = enc.encode('req:1')

    const c1 = edgeSide.seal(enc.encode('the secret prompt'), aad)
    assert.equal(Buffer.from(c1).includes(Buffer.from('secret')), false, 'ciphertext does not contain the plaintext')
    const c2 = edgeSide.seal(enc.encode('second'), aad)
    assert.equal(dec.decode(hostSide.open(c1, aad)), 'the secret prompt')
    assert.equal(dec.decode(hostSide.open(c2, aad)), 'second')
    // replaying c2 fails (the counter moved on)
    assert.throws(() => hostSide.open(c2, aad), SealError)

    const r1 = hostSide.seal(enc.encode('answer'), aad)
    const r2 = hostSide.seal(enc.encode('answer 2'), aad)
    // out of order fails
    assert.throws(() => edgeSide.open(r2, aad), SealError)
    // (a failed open uses up its position: the protocol closes the session on any failure)
    const { enc: encap2, channel: edge2 } = await openSealedSession(keys.publicKey, edge, hostSigner.address)
    const host2 = await acceptSealedSession(keys, encap2, edge, hostSigner.address)
    const s1 = host2.seal(enc.encode('answer'), aad)
    // wrong associated data fails
    assert.throws(() => edge2.open(s1, enc.encode('req:2')), SealError)
    assert.notEqual(r1.length, 0)
    // a flipped bit fails
    const { enc: encap3, channel: edge3 } = await openSealedSession(keys.publicKey, edge, hostSigner.address)
    const host3 = await acceptSealedSession(keys, encap3, edge, hostSigner.address)
    const t1 = host3.seal(enc.encode('x'), aad)
    t1.set([(t1[0] ?? 0) ^ 1], 0)
    assert.throws(() => edge3.open(t1, aad), SealError)
    assert.equal(dec.decode(edge3.open(host3.seal(enc.encode('y'), aad), aad)), 'y', 'after the failed position the next frame opens')
  })

  it('boxes of any size are the RFC 8439 bytes node:crypto makes with the same key and nonce, and open on the other side', () => {
    const k1 = randomBytes(32)
    const k2 = randomBytes(32)
    const a = new SealedChannel(k1, k2)
    const b = new SealedChannel(k2, k1)
    const sizes = [0, 1, 200, 511, 512, 513, 1_000, 5_000]
    let counter = 0n
    for (const aadBytes of [5, 40]) {
      for (const size of sizes) {
        const plain = randomBytes(size)
        const aad = randomBytes(aadBytes)
        const sealed = a.seal(plain, aad)
        // what node:crypto makes with the same key, nonce (4 zero bytes, then the counter) and data
        const nonce = Buffer.alloc(12)
        nonce.writeBigUInt64BE(counter++, 4)
        const cipher = createCipheriv('chacha20-poly1305', k1, nonce, { authTagLength: 16 })
        cipher.setAAD(aad, { plaintextLength: size })
        const want = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
        assert.deepEqual(Buffer.from(sealed), want, `${size} bytes, ${aadBytes} of associated data`)
        assert.deepEqual(Buffer.from(b.open(sealed, aad)), plain)
      }
    }
    // a changed tag fails, small or large
    for (const size of [10, 5_000]) {
      const sealed = a.seal(randomBytes(size), new Uint8Array(5))
      sealed[sealed.length - 1] = (sealed[sealed.length - 1] ?? 0) ^ 1
      assert.throws(() => b.open(sealed, new Uint8Array(5)), SealError)
    }
  })

  it('a session to one host does not open at another, nor for another edge', async () => {
    const keys = await deriveSealKeyPair(randomBytes(32))
    const otherKeys = await deriveSealKeyPair(randomBytes(32))
    const { enc: encap, channel } = await openSealedSession(keys.publicKey, 'edge', 'host')
    const frame = channel.seal(enc.encode('hello'), new Uint8Array())
    const wrongHost = await acceptSealedSession(otherKeys, encap, 'edge', 'host')
    assert.throws(() => wrongHost.open(frame, new Uint8Array()), SealError)
    const wrongEdge = await acceptSealedSession(keys, encap, 'mallory', 'host')
    assert.throws(() => wrongEdge.open(frame, new Uint8Array()), SealError)
    await assert.rejects(openSealedSession(new Uint8Array(31), 'edge', 'host'), SealError)
  })
})

test('sessions between real peer ids (long addresses) open on both sides', async () => {
  // regression: with @hpke/core 1.9.0 a long HPKE `info` gave the two ends different keys
  const host = signerFromSeed(randomBytes(32))
  const edge = signerFromSeed(randomBytes(32))
  const keys = await deriveSealKeyPair(randomBytes(32))
  const { enc: encap, channel } = await openSealedSession(keys.publicKey, edge.address, host.address)
  const hostSide = await acceptSealedSession(keys, encap, edge.address, host.address)
  assert.equal(dec.decode(hostSide.open(channel.seal(enc.encode('ok'), new Uint8Array()), new Uint8Array())), 'ok')
})
