import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { StreamMessageEvent } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import fc from 'fast-check'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { noiseCrypto } from '../../src/p2p/noise-crypto.ts'
import { loopbackAddress, startMeshLibp2p } from '../models/libp2p-fixture.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 100)
console.log(`noise crypto properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const bytesOf = (x: Uint8Array | { subarray(): Uint8Array }): Uint8Array => new Uint8Array(x instanceof Uint8Array ? x : x.subarray())

test("noise's ChaCha20-Poly1305 on libsodium makes and opens the library's own bytes, in place too; a changed byte fails", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3_000 }), fc.uint8Array({ maxLength: 64 }), fc.boolean(), (plain, ad, asList) => {
      const k = randomBytes(32)
      const nonce = randomBytes(12)
      const input = asList ? new Uint8ArrayList(plain.subarray(0, plain.byteLength >> 1), plain.subarray(plain.byteLength >> 1)) : plain
      const sealed = bytesOf(noiseCrypto.chaCha20Poly1305Encrypt(input, nonce, ad, k))
      assert.deepEqual(sealed, bytesOf(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k)))
      assert.deepEqual(bytesOf(defaultCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)), plain)
      // in place, as noise opens what it reads from a stream
      const copy = sealed.slice()
      const opened = noiseCrypto.chaCha20Poly1305Decrypt(copy, nonce, ad, k, copy.subarray(0, copy.byteLength - 16))
      assert.deepEqual(bytesOf(opened), plain)
      const bad = sealed.slice()
      const at = plain.byteLength % bad.byteLength
      bad[at] = (bad[at] ?? 0) ^ 1
      assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(bad, nonce, ad, k), /Invalid chacha20poly1305 decryption/)
    }),
    { seed, numRuns: runs }
  )
  assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(new Uint8Array(15), randomBytes(12), new Uint8Array(0), randomBytes(32)))
})

test('a node on libsodium noise and a node on the stock library talk: messages from 1 byte to past a noise message', async (t) => {
  const ours = await startMeshLibp2p(t)
  const stock = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  await stock.start()
  t.after(() => stock.stop())
  const ECHO = '/llmesh/test-noise-echo/1'
  await stock.handle(ECHO, (stream) => {
    stream.addEventListener('message', (evt) => {
      stream.send(evt.data)
    })
  })
  const address = stock.getMultiaddrs().find((a) => a.toString().includes('/127.0.0.1/'))
  assert.ok(address != null)
  const stream = await ours.dialProtocol(address, ECHO)
  for (const size of [1, 1_199, 1_200, 70_000, 300_000]) {
    const sent = randomBytes(size)
    const received = new Uint8ArrayList()
    const done = new Promise<void>((resolve, reject) => {
      const onMessage = (evt: StreamMessageEvent): void => {
        received.append(bytesOf(evt.data))
        if (received.byteLength >= size) {
          stream.removeEventListener('message', onMessage)
          resolve()
        }
      }
      stream.addEventListener('message', onMessage)
      setTimeout(() => reject(new Error(`no echo of ${size} bytes`)), 10_000).unref()
    })
    stream.send(sent)
    await done
    assert.deepEqual(Buffer.from(received.subarray()), sent, `${size} bytes`)
  }
  // and the other way: the stock node dials ours
  await ours.handle(ECHO, (s) => {
    s.addEventListener('message', (evt) => {
      s.send(evt.data)
    })
  })
  const back = await stock.dialProtocol(loopbackAddress(ours), ECHO)
  const reply = new Promise<Uint8Array>((resolve) => {
    back.addEventListener('message', (evt) => resolve(bytesOf(evt.data)), { once: true })
  })
  back.send(new TextEncoder().encode('hello'))
  assert.equal(new TextDecoder().decode(await reply), 'hello')
})
