import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import fc from 'fast-check'
import { decodeStoppingWhenEmpty, type LpInput, originalDecode } from '../../src/p2p/lp-decoder-fix.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 300)
console.log(`lp decoder properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const byteAt = (b: LpInput, i: number): number => (b instanceof Uint8Array ? (b[i] ?? 0) : b.get(i))

interface LengthKind {
  lengthDecoder: (b: LpInput) => number
  encodingLength: (n: number) => number
  encode: (n: number) => Uint8Array
}

const uint16: LengthKind = {
  lengthDecoder: (b: LpInput): number => {
    if (b.length < 2) throw new RangeError('Could not decode int16BE')
    return (byteAt(b, 0) << 8) | byteAt(b, 1)
  },
  encodingLength: () => 2,
  encode: (n: number) => Uint8Array.of(n >> 8, n & 0xff)
}
/** Unsigned LEB128, as uint8-varint reads it (a RangeError while incomplete). */
const uvarint: LengthKind = {
  lengthDecoder: (b: LpInput): number => {
    let value = 0
    for (let i = 0, shift = 1; i < Math.min(b.length, 8); i++, shift *= 128) {
      const byte = byteAt(b, i)
      value += (byte & 0x7f) * shift
      if (byte < 0x80) return value
    }
    throw new RangeError('Could not decode varint')
  },
  encodingLength: (n: number): number => {
    let bytes = 1
    while (n >= 128) {
      n = Math.floor(n / 128)
      bytes++
    }
    return bytes
  },
  encode: (n: number): Uint8Array => {
    const out: number[] = []
    while (n >= 128) {
      out.push((n % 128) | 0x80)
      n = Math.floor(n / 128)
    }
    out.push(n)
    return Uint8Array.from(out)
  }
}

type Outcome = { messages: string[]; error?: string }

function run(decode: typeof originalDecode, kind: LengthKind, chunks: Uint8Array[], maxDataLength: number): Outcome {
  const decoder = new LengthPrefixedDecoder({
    lengthDecoder: kind.lengthDecoder,
    encodingLength: kind.encodingLength,
    maxDataLength,
    maxBufferSize: 4_096
  })
  const messages: string[] = []
  try {
    for (const chunk of chunks) for (const m of decode.call(decoder, chunk)) messages.push(Buffer.from(m.subarray()).toString('hex'))
  } catch (err) {
    return { messages, error: (err as Error).name }
  }
  return { messages }
}

test('the fixed decoder is installed, and yields and throws what the library does on any chunking', () => {
  assert.equal(LengthPrefixedDecoder.prototype.decode, decodeStoppingWhenEmpty)
  fc.assert(
    fc.property(
      fc.constantFrom(uint16, uvarint),
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 0, max: 400 }),
      fc.uint8Array({ maxLength: 3 }),
      (kind, messages, cuts, maxDataLength, junk) => {
        // the messages, length-prefixed, then maybe a few stray bytes; cut into chunks of the given sizes, cycled
        const wire = Buffer.concat([...messages.flatMap((m) => [kind.encode(m.byteLength), m]), junk])
        const chunks: Uint8Array[] = []
        for (let at = 0, i = 0; at < wire.byteLength; i++) {
          const size = cuts[i % cuts.length] as number
          chunks.push(wire.subarray(at, at + size))
          at += size
        }
        assert.deepEqual(run(decodeStoppingWhenEmpty, kind, chunks, maxDataLength), run(originalDecode, kind, chunks, maxDataLength))
      }
    ),
    { seed, numRuns: runs }
  )
})

test('an empty buffer costs no thrown error', () => {
  let calls = 0
  const decoder = new LengthPrefixedDecoder({
    lengthDecoder: (b) => {
      calls++
      return uint16.lengthDecoder(b)
    },
    encodingLength: () => 2
  })
  const one = Buffer.concat([uint16.encode(3), Buffer.from('abc')])
  assert.deepEqual(
    [...decoder.decode(one)].map((m) => Buffer.from(m.subarray()).toString()),
    ['abc']
  )
  assert.equal(calls, 1)
})
