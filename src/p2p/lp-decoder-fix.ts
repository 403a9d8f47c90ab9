import { InvalidParametersError } from '@libp2p/interface'
import { InvalidMessageLengthError, LengthPrefixedDecoder } from '@libp2p/utils'

/** What the decoder is given: a chunk, or a list of chunks (uint8arraylist, as @libp2p/utils has it). */
export type LpInput = Parameters<LengthPrefixedDecoder['decode']>[0]
export type LpList = Exclude<LpInput, Uint8Array>

interface DecoderFields {
  buffer: LpList
  maxBufferSize: number
  maxDataLength: number
  lengthDecoder: (buf: LpList) => number
  encodingLength: (length: number) => number
}

export const originalDecode = LengthPrefixedDecoder.prototype.decode

/**
 * A fix for `LengthPrefixedDecoder.decode` of `@libp2p/utils` 7.4.1, which frames every noise
 * message of every connection (and libp2p's length-prefixed streams). After taking the last
 * complete message of a chunk it calls the length decoder once more on the empty buffer, which
 * throws a `RangeError` it then catches: an Error with a stack trace per received chunk. On the
 * mesh with one request in flight that was ~85 µs of CPU per request on this machine (four
 * chunks received per request, ~20 µs each under load; docs/performance.md, Gateway).
 *
 * This is the library's method with one change: it stops when the buffer is empty instead of
 * asking the length decoder to fail. What it yields and throws is otherwise the same (a property
 * test compares the two on random chunkings, test/p2p/lp-decoder-fix.test.ts).
 */
export function* decodeStoppingWhenEmpty(this: LengthPrefixedDecoder, buf: LpInput): Generator<LpList> {
  const self = this as unknown as DecoderFields
  self.buffer.append(buf)
  if (self.buffer.byteLength > self.maxBufferSize) {
    throw new InvalidParametersError(`Buffer length limit exceeded - ${self.buffer.byteLength}/${self.maxBufferSize}`)
  }
  while (self.buffer.byteLength > 0) {
    let dataLength: number
    try {
      dataLength = self.lengthDecoder(self.buffer)
    } catch (err) {
      // not enough bytes yet for the length prefix
      if (err instanceof RangeError) break
      throw err
    }
    if (dataLength < 0 || dataLength > self.maxDataLength) throw new InvalidMessageLengthError('Invalid message length')
    const prefixLength = self.encodingLength(dataLength)
    const chunkLength = prefixLength + dataLength
    if (self.buffer.byteLength < chunkLength) break
    const message = self.buffer.sublist(prefixLength, chunkLength)
    self.buffer.consume(chunkLength)
    if (message.byteLength > 0) yield message
  }
}

LengthPrefixedDecoder.prototype.decode = decodeStoppingWhenEmpty
