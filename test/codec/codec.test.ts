import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { type DecodeError, decodeCanonical, encodeCanonical } from '../../src/codec/index.ts'
import { decodePresence, type Presence } from '../../src/p2p/index.ts'
import { LIMITS, ROLES } from '../../src/params/index.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const params = { seed, numRuns: 500 }
console.log(`codec properties: FC_SEED=${seed}`)

const presenceArb: fc.Arbitrary<Presence> = fc.record({
  v: fc.constant(1 as const),
  seq: fc.nat(),
  time: fc.nat(),
  version: fc.string({ maxLength: 64 }),
  roles: fc.uniqueArray(fc.constantFrom(...ROLES), { maxLength: ROLES.length }),
  api: fc.option(fc.webUrl(), { nil: null })
})

test('presence round-trips through canonical DAG-CBOR', () => {
  fc.assert(
    fc.property(presenceArb, (p) => {
      assert.deepEqual({ ...decodePresence(encodeCanonical(p)) }, { ...p, roles: [...p.roles] })
    }),
    params
  )
})

test('random bytes never decode into a presence message', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      assert.throws(() => decodePresence(bytes))
    }),
    params
  )
})

test('a mutated encoding decodes to the same value or is rejected, never to another valid message silently equal in bytes', () => {
  fc.assert(
    fc.property(presenceArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (p, at, flip) => {
      const bytes = encodeCanonical(p)
      const mutated = bytes.slice()
      const i = at % mutated.length
      mutated[i] = (mutated[i] ?? 0) ^ flip
      try {
        const decoded = decodePresence(mutated)
        // if it decodes, it must re-encode to exactly the mutated bytes (canonical form)
        assert.deepEqual(encodeCanonical(decoded), mutated)
      } catch (err) {
        assert.ok(err instanceof Error)
      }
    }),
    params
  )
})

test('oversized input is refused before decoding', () => {
  const big = encodeCanonical({ pad: 'x'.repeat(LIMITS.maxPresenceBytes) })
  assert.throws(
    () => decodeCanonical(big, LIMITS.maxPresenceBytes),
    (err: DecodeError) => err.code === 'DECODE_TOO_LARGE'
  )
})

test('non-canonical encodings are refused', () => {
  // {a: 1} with the integer 1 in a needlessly long form (0x18 0x01 instead of 0x01)
  const longInt = Uint8Array.from([0xa1, 0x61, 0x61, 0x18, 0x01])
  assert.throws(
    () => decodeCanonical(longInt, 100),
    (err: DecodeError) => err.code === 'DECODE_NOT_CANONICAL' || err.code === 'DECODE_MALFORMED'
  )
  // map keys out of canonical order: {b: 1, a: 2}
  const unordered = Uint8Array.from([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02])
  assert.throws(
    () => decodeCanonical(unordered, 100),
    (err: DecodeError) => err.code === 'DECODE_NOT_CANONICAL' || err.code === 'DECODE_MALFORMED'
  )
  assert.deepEqual(decodeCanonical(Uint8Array.from([0xa1, 0x61, 0x61, 0x01]), 100), { a: 1 })
})

test('presence with extra fields, wrong version or unknown roles is refused', () => {
  const good: Presence = { v: 1, seq: 1, time: 1, version: '0.1.0', roles: ['edge'], api: null }
  assert.deepEqual(decodePresence(encodeCanonical(good)), good)
  assert.throws(() => decodePresence(encodeCanonical({ ...good, extra: 1 })))
  assert.throws(() => decodePresence(encodeCanonical({ ...good, v: 2 })))
  assert.throws(() => decodePresence(encodeCanonical({ ...good, roles: ['miner'] })))
  assert.throws(() => decodePresence(encodeCanonical({ ...good, seq: -1 })))
})
