import assert from 'node:assert/strict'
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto'
import { test } from 'node:test'
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys'
import fc from 'fast-check'
import { ed25519Sign, ed25519Verify, keyPairFromSeed } from '../../src/crypto/ed25519.ts'
import { originalEd25519Sign, originalEd25519Verify } from '../../src/p2p/fast-ed25519.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 100)
console.log(`ed25519 properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const opensslPrivate = (s: Uint8Array) => createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, s]), format: 'der', type: 'pkcs8' })
const opensslPublic = (raw: Uint8Array) => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })

test('libsodium signs the same bytes as OpenSSL (RFC 8032) and both accept and refuse the same signatures', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ maxLength: 600 }),
      fc.nat({ max: 63 }),
      fc.integer({ min: 1, max: 255 }),
      (s, message, at, flip) => {
        const { publicKey, secretKey } = keyPairFromSeed(s)
        const openssl = opensslPrivate(s)
        assert.deepEqual(publicKey, new Uint8Array(createPublicKey(openssl).export({ format: 'der', type: 'spki' }).subarray(12)))
        const sig = ed25519Sign(secretKey, message)
        assert.deepEqual(sig, new Uint8Array(sign(null, message, openssl)))
        assert.equal(ed25519Verify(publicKey, message, sig), true)
        const bad = sig.slice()
        bad[at] = (bad[at] ?? 0) ^ flip
        assert.equal(ed25519Verify(publicKey, message, bad), false)
        assert.equal(verify(null, message, opensslPublic(publicKey), bad), false)
        if (message.byteLength > 0) assert.equal(ed25519Verify(publicKey, message.subarray(1), sig), false)
      }
    ),
    { seed, numRuns: runs }
  )
})

test('ed25519Verify answers false for keys and signatures of the wrong size, and reads views at an offset', () => {
  const { publicKey, secretKey } = keyPairFromSeed(new Uint8Array(32).fill(9))
  const message = new TextEncoder().encode('a message')
  const sig = ed25519Sign(secretKey, message)
  assert.equal(ed25519Verify(publicKey.subarray(1), message, sig), false)
  assert.equal(ed25519Verify(publicKey, message, sig.subarray(1)), false)
  assert.equal(ed25519Verify(publicKey, message, new Uint8Array(0)), false)
  const padded = new Uint8Array(message.byteLength + 5)
  padded.set(message, 5)
  assert.equal(ed25519Verify(publicKey, padded.subarray(5), sig), true)
  assert.throws(() => keyPairFromSeed(new Uint8Array(31)), /32 bytes/)
})

test("libp2p's Ed25519 keys sign and verify on libsodium, interchangeably with the library's own code", async () => {
  const key = await generateKeyPair('Ed25519')
  const message = new TextEncoder().encode('gossip message body')
  const ours = await key.sign(message)
  const theirs = await originalEd25519Sign.call(key, message)
  assert.deepEqual(ours, new Uint8Array(theirs))
  assert.equal(await key.publicKey.verify(message, theirs), true)
  assert.equal(await originalEd25519Verify.call(key.publicKey, message, ours), true)
  const other = publicKeyFromRaw((await generateKeyPair('Ed25519')).publicKey.raw)
  assert.equal(await other.verify(message, ours), false)
  const aborted = AbortSignal.abort()
  assert.throws(() => key.sign(message, { signal: aborted }))
})
