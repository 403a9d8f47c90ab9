import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  decodeTx,
  decodeTxBatch,
  encodeTx,
  encodeTxBatch,
  type SignedTx,
  signedTxSchema,
  type TxBody,
  txSignBytes
} from '../../src/chain/index.ts'
import { readTransferWire, signBytesFromWire } from '../../src/chain/tx-wire.ts'
import { DecodeError, decodeCanonical, encodeCanonical } from '../../src/codec/index.ts'
import { MAX_AMOUNT } from '../../src/params/index.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const params = { seed, numRuns: 400 }
console.log(`transaction wire properties: FC_SEED=${seed}`)

/** The generic path alone: DAG-CBOR, canonical check, schema. */
function decodeGeneric(bytes: Uint8Array): SignedTx {
  return signedTxSchema.parse(decodeCanonical(bytes, 1 << 20)) as SignedTx
}

const asciiText = fc.string({ minLength: 1, maxLength: 64, unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)) })
// mostly ASCII (the fast path), sometimes anything (the generic path), sometimes out of bounds
const text = fc.oneof(
  { weight: 6, arbitrary: asciiText },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 64, unit: 'binary' }) },
  { weight: 1, arbitrary: fc.string({ minLength: 0, maxLength: 70 }) }
)
const amount = fc.oneof(
  fc.bigInt({ min: 0n, max: 30n }),
  fc.bigInt({ min: 0n, max: 2n ** 53n }),
  fc.bigInt({ min: 0n, max: MAX_AMOUNT }),
  fc.constantFrom(23n, 24n, 255n, 256n, 65_535n, 65_536n, 2n ** 32n - 1n, 2n ** 32n, MAX_AMOUNT)
)
const nonce = fc.oneof(fc.nat(30), fc.nat(), fc.constantFrom(23, 24, 255, 256, 2 ** 32, Number.MAX_SAFE_INTEGER))
const sig = fc.uint8Array({ minLength: 64, maxLength: 64 })

const transferArb: fc.Arbitrary<SignedTx> = fc.record({
  chainId: text,
  from: text,
  nonce,
  fee: amount,
  body: fc.record({ type: fc.constant('transfer' as const), to: text, amount }),
  sig
})

const otherBodies: fc.Arbitrary<TxBody> = fc.oneof(
  fc.record({ type: fc.constant('stake' as const), role: fc.constantFrom('validator' as const, 'host' as const), amount }),
  fc.record({ type: fc.constant('escrow-close' as const) }),
  fc.record({ type: fc.constant('escrow-open' as const), amount }),
  fc.record({ type: fc.constant('gov-vote' as const), proposal: fc.nat(), choice: fc.constantFrom('yes' as const, 'no' as const) })
)
const anyTxArb: fc.Arbitrary<SignedTx> = fc.oneof(
  transferArb,
  fc.record({ chainId: asciiText, from: asciiText, nonce, fee: amount, body: otherBodies, sig })
)

const isAscii = (s: string) => [...s].every((c) => c.charCodeAt(0) < 0x80)
const validText = (s: string) => s.length >= 1 && s.length <= 64

/** What a decoder gives, or the error code it throws (DecodeError only; anything else fails the test). */
function outcome(f: () => SignedTx): SignedTx | string {
  try {
    return f()
  } catch (err) {
    if (err instanceof DecodeError) return err.code
    if ((err as Error).name === 'ZodError') return 'SCHEMA'
    throw err
  }
}

test('the hand-written transfer reader gives exactly what the generic decoder gives', () => {
  fc.assert(
    fc.property(transferArb, (tx) => {
      const bytes = encodeTx(tx)
      const fast = readTransferWire(bytes)
      const generic = outcome(() => decodeGeneric(bytes))
      const wellFormed = [tx.chainId, tx.from, tx.body.type === 'transfer' ? tx.body.to : ''].every(validText)
      if (fast !== null) assert.deepStrictEqual(fast, generic)
      // it takes every well-formed transfer whose strings are ASCII, and nothing the generic path refuses
      const ascii = [tx.chainId, tx.from, tx.body.type === 'transfer' ? tx.body.to : ''].every(isAscii)
      if (wellFormed && ascii) assert.notEqual(fast, null)
      if (typeof generic === 'string') assert.equal(fast, null)
      // and decodeTx (fast path first) agrees with the generic path
      const viaDecodeTx = outcome(() => decodeTx(bytes, 1 << 20))
      if (typeof generic === 'string') assert.equal(typeof viaDecodeTx, 'string')
      else assert.deepStrictEqual(viaDecodeTx, generic)
    }),
    params
  )
})

test('changed transaction bytes are refused, or are another canonical transaction both paths agree on', () => {
  const mutation = fc.tuple(transferArb, fc.nat(), fc.nat(255), fc.constantFrom('flip', 'insert', 'delete', 'truncate'))
  fc.assert(
    fc.property(mutation, ([tx, at, byte, kind]) => {
      const bytes = encodeTx(tx)
      const i = at % bytes.length
      const m =
        kind === 'flip'
          ? Uint8Array.from(bytes, (b, j) => (j === i ? b ^ (byte || 1) : b))
          : kind === 'insert'
            ? Uint8Array.from([...bytes.subarray(0, i), byte, ...bytes.subarray(i)])
            : kind === 'delete'
              ? Uint8Array.from([...bytes.subarray(0, i), ...bytes.subarray(i + 1)])
              : bytes.subarray(0, i)
      const fast = readTransferWire(m)
      const generic = outcome(() => decodeGeneric(m))
      const viaDecodeTx = outcome(() => decodeTx(m, 1 << 20))
      if (fast !== null) assert.deepStrictEqual(fast, generic)
      if (typeof generic === 'string') assert.equal(typeof viaDecodeTx, 'string')
      else {
        assert.deepStrictEqual(viaDecodeTx, generic)
        // accepted bytes are the one canonical encoding of what they decode to
        assert.deepStrictEqual(new Uint8Array(encodeTx(viaDecodeTx as SignedTx)), new Uint8Array(m))
      }
    }),
    params
  )
})

test('random bytes never decode into a transaction', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      assert.throws(() => decodeTx(bytes, 4096), DecodeError)
      assert.equal(readTransferWire(bytes), null)
    }),
    params
  )
})

test('decodeTx checks the size limit before anything else', () => {
  const bytes = encodeTx({
    chainId: 'c',
    from: 'a',
    nonce: 0,
    fee: 1n,
    body: { type: 'transfer', to: 'b', amount: 1n },
    sig: new Uint8Array(64)
  })
  assert.throws(() => decodeTx(bytes, bytes.length - 1), { code: 'DECODE_TOO_LARGE' })
  assert.equal(decodeTx(bytes, bytes.length).nonce, 0)
})

test('the signed bytes cut from the wire bytes are the signed bytes of the transaction, for every type', () => {
  fc.assert(
    fc.property(anyTxArb, (tx) => {
      assert.deepStrictEqual(signBytesFromWire(encodeTx(tx)), new Uint8Array(txSignBytes(tx)))
    }),
    params
  )
  assert.equal(signBytesFromWire(new Uint8Array([0xa6])), null)
  assert.equal(signBytesFromWire(encodeCanonical({ fee: 1, sig: new Uint8Array(3) })), null)
})

test('a transaction batch round-trips, and the hand-written batch reader takes only canonical lists of bytes', () => {
  const limits = { maxTxs: 64, maxBytes: 1 << 20 }
  const batchArb = fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 64 })
  fc.assert(
    fc.property(batchArb, (txs) => {
      assert.deepStrictEqual(
        decodeTxBatch(encodeTxBatch(txs), limits),
        txs.map((t) => new Uint8Array(t))
      )
    }),
    params
  )
  // anything the reader accepts is the canonical encoding of a list of byte strings
  fc.assert(
    fc.property(batchArb, fc.nat(), fc.nat(255), fc.boolean(), (txs, at, byte, insert) => {
      const bytes = encodeTxBatch(txs)
      const i = at % bytes.length
      const m = insert
        ? Uint8Array.from([...bytes.subarray(0, i), byte, ...bytes.subarray(i)])
        : Uint8Array.from(bytes, (b, j) => (j === i ? byte : b))
      let decoded: Uint8Array[]
      try {
        decoded = decodeTxBatch(m, limits)
      } catch (err) {
        assert.ok(err instanceof DecodeError)
        return
      }
      assert.deepStrictEqual(new Uint8Array(encodeTxBatch(decoded)), new Uint8Array(m))
    }),
    params
  )
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      let decoded: Uint8Array[]
      try {
        decoded = decodeTxBatch(bytes, limits)
      } catch (err) {
        assert.ok(err instanceof DecodeError)
        return
      }
      assert.deepStrictEqual(new Uint8Array(encodeTxBatch(decoded)), new Uint8Array(bytes))
    }),
    params
  )
  // bounds
  assert.throws(() => decodeTxBatch(encodeTxBatch([]), limits), { code: 'DECODE_MALFORMED' })
  const many = Array.from({ length: 65 }, () => new Uint8Array(1))
  assert.throws(() => decodeTxBatch(encodeTxBatch(many), limits), { code: 'DECODE_MALFORMED' })
  assert.throws(() => decodeTxBatch(encodeTxBatch([new Uint8Array(100)]), { maxTxs: 1, maxBytes: 50 }), { code: 'DECODE_TOO_LARGE' })
  assert.throws(() => decodeTxBatch(encodeCanonical(['text']), limits), { code: 'DECODE_MALFORMED' })
  // a non-shortest length is not canonical
  assert.throws(() => decodeTxBatch(Uint8Array.from([0x81, 0x58, 0x01, 0x00]), limits), { code: 'DECODE_MALFORMED' })
  assert.throws(() => decodeTxBatch(Uint8Array.from([0x98, 0x01, 0x40]), limits), { code: 'DECODE_MALFORMED' })
  // indefinite length
  assert.throws(() => decodeTxBatch(Uint8Array.from([0x9f, 0x40, 0xff]), limits), { code: 'DECODE_MALFORMED' })
})
