import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Stream } from '@libp2p/interface'
import fc from 'fast-check'
import { FrameStream, FrameStreamError } from '../../src/inference/frame-stream.ts'

/** Just enough of a libp2p stream: events in, `send` out (false: full, until 'drain'). */
class FakeStream extends EventTarget {
  sent: Uint8Array[] = []
  full = false
  send(data: Uint8Array): boolean {
    this.sent.push(data)
    return !this.full
  }
  deliver(data: Uint8Array | Uint8Array[]): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data }))
  }
}

function varint(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}

const wire = (frames: Uint8Array[]): Uint8Array => new Uint8Array(frames.flatMap((f) => [...varint(f.byteLength), ...f]))

describe('FrameStream', () => {
  it('property: frames cut anywhere into chunks come out whole, in order, each once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (frames, cuts) => {
          const stream = new FakeStream()
          const fs = new FrameStream(stream as unknown as Stream, { maxFrameBytes: 1024 })
          const got: Uint8Array[] = []
          fs.listen(
            (f) => got.push(f.slice()),
            (err) => assert.fail(err)
          )
          const bytes = wire(frames)
          let at = 0
          for (let i = 0; at < bytes.byteLength; i++) {
            const n = cuts[i % cuts.length] as number
            // some chunks come as a list of pieces, as a Uint8ArrayList does
            const chunk = bytes.subarray(at, at + n)
            stream.deliver(i % 2 === 0 ? chunk : [chunk.subarray(0, 1), chunk.subarray(1)])
            at += n
          }
          assert.deepEqual(
            got.map((f) => Buffer.from(f)),
            frames.map((f) => Buffer.from(f))
          )
        }
      ),
      { numRuns: 200 }
    )
  })

  it('refuses a frame over the limit before buffering it, and a length prefix longer than the limit needs', () => {
    for (const bytes of [new Uint8Array(varint(1025)), new Uint8Array([0x80, 0x80, 0x80])]) {
      const stream = new FakeStream()
      const fs = new FrameStream(stream as unknown as Stream, { maxFrameBytes: 1024 })
      let ended: unknown
      fs.listen(
        () => assert.fail('no frame'),
        (err) => {
          ended = err
        }
      )
      stream.deliver(bytes)
      assert.ok(ended instanceof FrameStreamError && ended.code === 'FRAME_TOO_LARGE')
    }
  })

  it('keeps frames for read() and then listen(), bounded; the stream closing rejects a pending read', async () => {
    const stream = new FakeStream()
    const fs = new FrameStream(stream as unknown as Stream, { maxFrameBytes: 1024, maxBacklogBytes: 10 })
    stream.deliver(wire([new Uint8Array([1]), new Uint8Array([2, 2])]))
    assert.deepEqual([...(await fs.read())], [1])
    const got: number[][] = []
    fs.listen(
      (f) => got.push([...f]),
      () => {}
    )
    assert.deepEqual(got, [[2, 2]])
    const full = new FakeStream()
    const backlog = new FrameStream(full as unknown as Stream, { maxFrameBytes: 1024, maxBacklogBytes: 10 })
    full.deliver(wire([new Uint8Array(8), new Uint8Array(8)]))
    // the frames kept come first, then why no more will come
    assert.equal((await backlog.read()).byteLength, 8)
    await assert.rejects(backlog.read(), (err: unknown) => err instanceof FrameStreamError && err.code === 'FRAME_BACKLOG_FULL')
    const closing = new FakeStream()
    const pending = new FrameStream(closing as unknown as Stream, { maxFrameBytes: 1024 }).read()
    closing.dispatchEvent(new Event('close'))
    await assert.rejects(pending, FrameStreamError)
  })

  it('writes a batch as one send with length prefixes, and waits for drain when the stream is full', async () => {
    const stream = new FakeStream()
    const fs = new FrameStream(stream as unknown as Stream, { maxFrameBytes: 1024 })
    await fs.writeV([new Uint8Array([1, 2]), new Uint8Array(200)])
    assert.equal(stream.sent.length, 1)
    assert.deepEqual([...(stream.sent[0] ?? new Uint8Array(0)).subarray(0, 6)], [2, 1, 2, 0xc8, 0x01, 0])
    stream.full = true
    let drained = false
    const writing = fs.write(new Uint8Array([7])).then(() => {
      drained = true
    })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(drained, false)
    stream.dispatchEvent(new Event('drain'))
    await writing
    assert.equal(drained, true)
  })
})
