import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Socket } from 'node:net'
import { type TestContext, test } from 'node:test'
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { Stream } from '@libp2p/interface'
import { AbstractMultiaddrConnection } from '@libp2p/utils'
import fc from 'fast-check'
import type { MeshLibp2p } from '../../src/p2p/index.ts'
import { originalConnectionSend, originalSendWindowUpdate, sendJoined, sendWindowUpdateAtHalf } from '../../src/p2p/transport-fixes.ts'
import { loopbackAddress, startMeshLibp2p } from '../models/libp2p-fixture.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 20)
console.log(`transport properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const ECHO = '/llmesh/test-echo/1'

/** Two connected nodes and one stream whose far end echoes every chunk it receives. */
async function echoPair(t: TestContext): Promise<{ stream: Stream; a: MeshLibp2p }> {
  const a = await startMeshLibp2p(t)
  const b = await startMeshLibp2p(t)
  await b.handle(ECHO, (stream) => {
    stream.addEventListener('message', (evt) => {
      stream.send(evt.data)
    })
  })
  const stream = await a.dialProtocol(loopbackAddress(b), ECHO)
  return { stream, a }
}

/** Sends `message`, resolves with the bytes echoed once `message.byteLength` of them are back. */
function roundTrip(stream: Stream, message: Uint8Array, timeoutMs = 10_000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = []
    let got = 0
    const timer = setTimeout(() => {
      stream.removeEventListener('message', onMessage)
      reject(new Error(`${got} of ${message.byteLength} bytes back after ${timeoutMs} ms`))
    }, timeoutMs)
    const onMessage = (evt: { data: Uint8Array | { subarray(): Uint8Array } }): void => {
      const chunk = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      chunks.push(chunk)
      got += chunk.byteLength
      if (got < message.byteLength) return
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
      resolve(Buffer.concat(chunks))
    }
    stream.addEventListener('message', onMessage)
    stream.send(message)
  })
}

/** Socket writes (every socket of this process) while `fn` runs. */
async function countWrites(fn: () => Promise<void>): Promise<number> {
  const write = Socket.prototype.write
  let writes = 0
  Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    writes++
    return write.apply(this, args)
  } as Socket['write']
  try {
    await fn()
  } finally {
    Socket.prototype.write = write
  }
  return writes
}

const ROUNDS = 200

test('a request and its answer take one socket write each way, where the libraries alone took four', async (t) => {
  assert.equal(AbstractMultiaddrConnection.prototype.send, sendJoined, 'the fixes are installed by importing the node stack')
  assert.equal(YamuxStream.prototype.sendWindowUpdate, sendWindowUpdateAtHalf)
  const { stream } = await echoPair(t)
  const message = randomBytes(300)
  for (let i = 0; i < 20; i++) await roundTrip(stream, message) // identify and the DHT's first exchanges settle
  const rounds = async (): Promise<void> => {
    for (let i = 0; i < ROUNDS; i++) assert.deepEqual(await roundTrip(stream, message), message)
  }
  const fixed = await countWrites(rounds)
  // the libraries' own methods, on the same connection
  AbstractMultiaddrConnection.prototype.send = originalConnectionSend
  YamuxStream.prototype.sendWindowUpdate = originalSendWindowUpdate
  let library: number
  try {
    library = await countWrites(rounds)
  } finally {
    AbstractMultiaddrConnection.prototype.send = sendJoined
    YamuxStream.prototype.sendWindowUpdate = sendWindowUpdateAtHalf
  }
  t.diagnostic(`socket writes per round trip: ${(fixed / ROUNDS).toFixed(2)} with the fixes, ${(library / ROUNDS).toFixed(2)} without`)
  // a few writes of the nodes' own background work (DHT, identify) may fall in the window
  assert.ok(fixed <= ROUNDS * 2 + 20, `${fixed} writes for ${ROUNDS} round trips`)
  assert.ok(library >= ROUNDS * 7, `without the fixes ${library} writes for ${ROUNDS} round trips`)
})

test('property: messages of any size, up to several windows and past the join limit, come back byte-identical', async (t) => {
  const { stream } = await echoPair(t)
  // up to 9 MiB: past MAX_JOINED_BYTES (sent as chunks), many noise messages, several yamux windows
  const size = fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: 60_000, max: 600_000 }), fc.constant(9 * 1024 * 1024))
  await fc.assert(
    fc.asyncProperty(fc.array(size, { minLength: 1, maxLength: 4 }), async (sizes) => {
      for (const n of sizes) {
        const message = randomBytes(n)
        assert.ok(Buffer.from(await roundTrip(stream, message, 30_000)).equals(message), `${n} bytes`)
      }
    }),
    { seed, numRuns: runs }
  )
})

test('a stream sending more than its window without reading answers still moves on: updates come at half the window', async (t) => {
  const { stream } = await echoPair(t)
  // many small messages in a row, none awaited: each side's credit is used up and renewed many times
  const messages = Array.from({ length: 3_000 }, () => randomBytes(700))
  const all = Buffer.concat(messages)
  const back = new Promise<Buffer>((resolve, reject) => {
    const chunks: Uint8Array[] = []
    let got = 0
    const timer = setTimeout(() => reject(new Error(`${got} of ${all.byteLength} bytes back`)), 30_000)
    stream.addEventListener('message', (evt) => {
      const chunk = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      chunks.push(chunk)
      got += chunk.byteLength
      if (got >= all.byteLength) {
        clearTimeout(timer)
        resolve(Buffer.concat(chunks))
      }
    })
  })
  for (const m of messages) if (!stream.send(m)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
  assert.ok((await back).equals(all))
})
