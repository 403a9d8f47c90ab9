import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import {
  acceptSealedSession,
  deriveSealKeyPair,
  openSealedSession,
  SealError,
  SignatureVerifier,
  signerFromSeed
} from '../../src/crypto/index.ts'
import { normalizeGenerateRequest } from '../../src/inference/engine.ts'
import { joinFrames } from '../../src/inference/frame-stream.ts'
import {
  BOX_AAD,
  decodeFrame,
  decodeJob,
  decodeJobResult,
  EDGE_BOXED,
  encodeFrame,
  encodeJob,
  encodeJobResult,
  type Frame,
  FrameError,
  HOST_BOXED,
  type Job,
  jobFromRequest,
  MAX_BOX_PLAIN_BYTES,
  packBoxes,
  unpackBox
} from '../../src/inference/protocol.ts'
import {
  decodeReceipt,
  encodeReceiptBody,
  ReceiptBatcher,
  type ReceiptBody,
  ReceiptChecker,
  ReceiptError,
  receiptJson,
  signReceipt,
  verifyReceipt
} from '../../src/inference/receipt.ts'
import { leafHash, MAX_RECEIPT_BATCH, merkleTree, rootFromProof } from '../../src/inference/receipt-batch.ts'
import { HOST_LIMITS } from '../../src/params/index.ts'

const host = signerFromSeed(new Uint8Array(32).fill(7))
const edge = signerFromSeed(new Uint8Array(32).fill(9))
const bytesOf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

function body(i: number, over: Partial<ReceiptBody> = {}): ReceiptBody {
  return {
    v: 1,
    job: `job-${i}`,
    model: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku',
    host: host.address,
    client: edge.address,
    input: new Uint8Array(32).fill(i & 0xff),
    output: new Uint8Array(32).fill((i * 7) & 0xff),
    promptTokens: 200 + i,
    completionTokens: 16,
    finish: 'length',
    time: 1_790_000_000_000 + i,
    cost: BigInt(i) * 1_000n,
    payer: i % 2 === 0 ? null : edge.address,
    ...over
  }
}

const arbBody = fc.record({
  v: fc.constant(1 as const),
  job: fc.string({ minLength: 1, maxLength: 128, unit: 'grapheme' }).filter((s) => s.length >= 1 && s.length <= 128),
  model: fc.string({ minLength: 1, maxLength: 80 }),
  host: fc.constant(host.address),
  client: fc.string({ minLength: 1, maxLength: 64 }),
  input: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  output: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  promptTokens: fc.integer({ min: 0, max: 2 ** 32 }),
  completionTokens: fc.integer({ min: 0, max: 2 ** 32 }),
  finish: fc.constantFrom('stop' as const, 'length' as const, 'aborted' as const),
  time: fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(Number.MAX_SAFE_INTEGER)),
  cost: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  payer: fc.option(fc.string({ minLength: 1, maxLength: 64 }), { nil: null })
})

describe('receipts: hand-written canonical DAG-CBOR', () => {
  it('property: the bytes are those @ipld/dag-cbor gives, and decode back to the same fields', () => {
    fc.assert(
      fc.property(arbBody, (b) => {
        const bytes = signReceipt(host, b)
        const sig = (dagCbor.decode(bytes) as { sig: Uint8Array }).sig
        assert.deepEqual(bytesOf(bytes), bytesOf(dagCbor.encode({ ...b, sig })))
        assert.deepEqual(bytesOf(encodeReceiptBody(b)), bytesOf(dagCbor.encode(b)))
        const r = verifyReceipt(bytes)
        assert.deepEqual({ ...r, sig: undefined }, { ...b, sig: undefined })
      }),
      { numRuns: 200 }
    )
  })

  it('refuses non-canonical, ill-typed, out-of-bound and oversized receipts with RECEIPT_MALFORMED', () => {
    const good = signReceipt(host, body(1))
    const value = dagCbor.decode(good) as Record<string, unknown>
    const malformed = (bytes: Uint8Array): void =>
      assert.throws(
        () => verifyReceipt(bytes),
        (err: unknown) => err instanceof ReceiptError && err.code === 'RECEIPT_MALFORMED'
      )
    malformed(new Uint8Array(3000))
    malformed(good.subarray(0, good.byteLength - 1))
    malformed(Buffer.concat([good, Buffer.from([0])]))
    malformed(dagCbor.encode({ ...value, v: 2 }))
    malformed(dagCbor.encode({ ...value, job: '' }))
    malformed(dagCbor.encode({ ...value, job: 'x'.repeat(129) }))
    malformed(dagCbor.encode({ ...value, input: new Uint8Array(31) }))
    malformed(dagCbor.encode({ ...value, finish: 'done' }))
    malformed(dagCbor.encode({ ...value, promptTokens: 2 ** 32 + 1 }))
    malformed(dagCbor.encode({ ...value, cost: -1 }))
    malformed(dagCbor.encode({ ...value, extra: 1 }))
    const { sig: _, ...noSig } = value
    malformed(dagCbor.encode(noSig))
    // a non-shortest integer head (promptTokens 201 as a 2-byte argument) is refused
    const at = Buffer.from(good).indexOf(Buffer.from([0x6c, ...Buffer.from('promptTokens')])) + 13
    assert.equal(good[at], 0x18)
    const long = Buffer.concat([good.subarray(0, at), Buffer.from([0x19, 0x00, good[at + 1] as number]), good.subarray(at + 2)])
    malformed(long)
    // invalid UTF-8 in a text field
    const bad = Buffer.from(good)
    bad[bad.indexOf(Buffer.from('job-1'))] = 0xff
    malformed(bad)
  })

  it('a changed field or signature fails with RECEIPT_BAD_SIGNATURE', () => {
    const good = signReceipt(host, body(2))
    const value = dagCbor.decode(good) as Record<string, unknown>
    for (const changed of [{ cost: 1n }, { completionTokens: 17 }, { client: host.address }, { sig: new Uint8Array(64) }]) {
      assert.throws(
        () => verifyReceipt(dagCbor.encode({ ...value, ...changed })),
        (err: unknown) => err instanceof ReceiptError && err.code === 'RECEIPT_BAD_SIGNATURE'
      )
    }
  })
})

describe('batched receipts', () => {
  it('property: every proof of a tree leads to its root, and no other index or count does', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), (n) => {
        const leaves = Array.from({ length: n }, (_, i) => leafHash(new Uint8Array([i, n])))
        const { root, proofs } = merkleTree(leaves)
        for (let i = 0; i < n; i++) {
          const path = proofs[i] ?? []
          assert.deepEqual(rootFromProof(leaves[i] as Uint8Array, i, n, path), root)
          if (n > 1) {
            const other = rootFromProof(leaves[i] as Uint8Array, (i + 1) % n, n, path)
            assert.notDeepEqual(other, root)
            assert.equal(rootFromProof(leaves[i] as Uint8Array, i, n, path.slice(1)), null)
            assert.equal(rootFromProof(leaves[i] as Uint8Array, i, n, [...path, root]), null)
          }
        }
      }),
      { numRuns: 70 }
    )
  })

  it('a batch of n receipts: each verifies alone with nothing but the host key; one alone has no proof', () => {
    for (const n of [1, 2, 3, 5, 8, 33]) {
      const batcher = new ReceiptBatcher(host)
      const tickets = Array.from({ length: n }, (_, i) => batcher.add(body(i)))
      const receipts = tickets.map((t) => t())
      const sigs = new Set<string>()
      for (const [i, bytes] of receipts.entries()) {
        const r = verifyReceipt(bytes)
        assert.equal(r.job, `job-${i}`)
        assert.equal(r.proof === undefined, n === 1)
        // the body with sig and proof spliced in: still the canonical DAG-CBOR of the receipt
        assert.deepEqual(bytesOf(bytes), bytesOf(dagCbor.encode(dagCbor.decode(bytes))))
        if (r.proof !== undefined) {
          assert.equal(r.proof.index, i)
          assert.equal(r.proof.count, n)
          assert.ok((receiptJson(r).proof as { path: string[] }).path.length > 0)
        }
        sigs.add(Buffer.from(r.sig).toString('hex'))
        assert.deepEqual(bytesOf(decodeReceipt(bytes).body), bytesOf(encodeReceiptBody(body(i))))
      }
      assert.equal(sigs.size, 1)
      // the batch closed when it was signed: a later receipt starts a new one
      assert.equal(verifyReceipt(batcher.add(body(99))()).proof, undefined)
    }
  })

  it('a batched receipt with a changed field, index, count or proof hash does not verify', () => {
    const batcher = new ReceiptBatcher(host)
    const tickets = Array.from({ length: 6 }, (_, i) => batcher.add(body(i)))
    const bytes = tickets[3]?.() as Uint8Array
    const value = dagCbor.decode(bytes) as Record<string, unknown> & { proof: { i: number; n: number; path: Uint8Array[] } }
    const fails = (changed: Record<string, unknown>): void =>
      assert.throws(() => verifyReceipt(dagCbor.encode({ ...value, ...changed })), ReceiptError)
    fails({ cost: 5n })
    fails({ job: 'job-4' })
    fails({ proof: { ...value.proof, i: 2 } })
    fails({ proof: { ...value.proof, n: 7 } })
    fails({ proof: { ...value.proof, n: 1, i: 0 } })
    fails({ proof: { ...value.proof, path: [new Uint8Array(32), ...value.proof.path.slice(1)] } })
    fails({ proof: { ...value.proof, path: value.proof.path.slice(1) } })
    fails({ proof: { ...value.proof, path: [...value.proof.path, new Uint8Array(32)] } })
    fails({ proof: { ...value.proof, path: Array.from({ length: 11 }, () => new Uint8Array(32)) } })
    fails({ proof: { ...value.proof, extra: 1 } })
    // a proof on a receipt signed alone is refused too: its signature covers the body, not a root
    const single = dagCbor.decode(signReceipt(host, body(3))) as Record<string, unknown>
    assert.throws(() => verifyReceipt(dagCbor.encode({ ...single, proof: value.proof })), ReceiptError)
    assert.ok(MAX_RECEIPT_BATCH >= 64)
  })

  it('ReceiptChecker checks one signature per batch, and still refuses a forged batch-mate', () => {
    let verified = 0
    const verifier = new SignatureVerifier()
    const counting = Object.assign(Object.create(verifier) as SignatureVerifier, {
      verify: (a: string, m: Uint8Array, s: Uint8Array) => {
        verified++
        return verifier.verify(a, m, s)
      }
    })
    const checker = new ReceiptChecker(counting)
    const batcher = new ReceiptBatcher(host)
    const tickets = Array.from({ length: 10 }, (_, i) => batcher.add(body(i)))
    for (const t of tickets) checker.verify(t())
    assert.equal(verified, 1)
    const value = dagCbor.decode(tickets[0]?.() as Uint8Array) as Record<string, unknown>
    // a forged batch-mate leads to another root: checked, and refused
    assert.throws(() => checker.verify(dagCbor.encode({ ...value, cost: 1n })), ReceiptError)
    assert.equal(verified, 2)
    // single receipts are always checked
    checker.verify(signReceipt(host, body(1)))
    checker.verify(signReceipt(host, body(1)))
    assert.equal(verified, 4)
  })
})

describe('inference frames and job results: hand-written hot path', () => {
  it('property: hot frames encode as @ipld/dag-cbor does and decode back', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('req' as const, 'tok' as const, 'end' as const, 'pay' as const),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.uint8Array({ maxLength: 600 }),
        (t, id, body) => {
          const frame = { t, id, body }
          const bytes = encodeFrame(frame)
          assert.deepEqual(bytesOf(bytes), bytesOf(dagCbor.encode(frame)))
          const back = decodeFrame(bytes) as typeof frame
          assert.deepEqual({ ...back, body: bytesOf(back.body) }, { ...frame, body: bytesOf(body) })
          const cancel = { t: 'cancel' as const, id }
          assert.deepEqual(bytesOf(encodeFrame(cancel)), bytesOf(dagCbor.encode(cancel)))
          assert.deepEqual(decodeFrame(encodeFrame(cancel)), cancel)
        }
      ),
      { numRuns: 300 }
    )
  })

  it('frames off the canonical form or the shape are refused with FrameError', () => {
    const refuse = (bytes: Uint8Array): void => assert.throws(() => decodeFrame(bytes), FrameError)
    const tok = encodeFrame({ t: 'tok', id: 5, body: new Uint8Array(4) })
    refuse(Buffer.concat([tok, Buffer.from([0])]))
    refuse(tok.subarray(0, tok.byteLength - 1))
    // id 5 written with a one-byte argument
    refuse(
      Buffer.from([0xa3, 0x61, 0x74, 0x63, ...Buffer.from('tok'), 0x62, ...Buffer.from('id'), 0x18, 5, 0x64, ...Buffer.from('body'), 0x40])
    )
    refuse(dagCbor.encode({ t: 'tok', id: 2 ** 32, body: new Uint8Array(1) }))
    refuse(dagCbor.encode({ t: 'tok', id: 1, body: 'text' }))
    refuse(dagCbor.encode({ t: 'tok', id: 1, body: new Uint8Array(1), x: 1 }))
    refuse(dagCbor.encode({ t: 'cancel', id: 1, body: new Uint8Array(1) }))
    refuse(dagCbor.encode({ t: 'nope', id: 1, body: new Uint8Array(1) }))
  })

  it('property: job results encode as @ipld/dag-cbor does and decode back', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('stop' as const, 'length' as const, 'aborted' as const),
        fc.option(fc.string({ maxLength: 40 }), { nil: null }),
        fc.nat(),
        fc.nat(),
        fc.uint8Array({ maxLength: 700 }),
        (finish, stopSequence, promptTokens, completionTokens, receipt) => {
          const result = { finish, stopSequence, promptTokens, completionTokens, receipt }
          const bytes = encodeJobResult(result)
          assert.deepEqual(bytesOf(bytes), bytesOf(dagCbor.encode(result)))
          const back = decodeJobResult(bytes)
          assert.deepEqual({ ...back, receipt: bytesOf(back.receipt) }, { ...result, receipt: bytesOf(receipt) })
        }
      ),
      { numRuns: 200 }
    )
    assert.throws(
      () =>
        decodeJobResult(
          dagCbor.encode({ finish: 'done', stopSequence: null, promptTokens: 1, completionTokens: 1, receipt: new Uint8Array(1) })
        ),
      FrameError
    )
  })
})

describe('boxes: the sealed frames of a session', () => {
  const channels = async () => {
    const keys = await deriveSealKeyPair(new Uint8Array(32).fill(3))
    const { enc, channel: edgeSide } = await openSealedSession(keys.publicKey, edge.address, host.address)
    return { edgeSide, hostSide: await acceptSealedSession(keys, enc, edge.address, host.address) }
  }
  const hostFrame: fc.Arbitrary<Frame> = fc.oneof(
    fc.record({ t: fc.constantFrom('tok' as const, 'end' as const), id: fc.nat(), body: fc.uint8Array({ maxLength: 2_000 }) }),
    // now and then a frame of a sixth of a box or more, so that some batches need several boxes
    fc.record({
      t: fc.constant('end' as const),
      id: fc.nat(),
      body: fc.integer({ min: 1, max: MAX_BOX_PLAIN_BYTES - 64 }).map((n) => new Uint8Array(n).fill(n & 0xff))
    }),
    fc.record({ t: fc.constant('err' as const), id: fc.nat(), code: fc.constant('busy' as const), message: fc.string({ maxLength: 80 }) })
  )
  const plainOf = (f: Frame): unknown => ('body' in f ? { ...f, body: bytesOf(f.body) } : { ...f })

  it('property: a batch of frames goes out in boxes within the frame limit, which open to the same frames in order', async () => {
    const { edgeSide, hostSide } = await channels()
    await fc.assert(
      fc.asyncProperty(fc.array(hostFrame, { minLength: 1, maxLength: 12 }), async (frames) => {
        const encoded = frames.map(encodeFrame)
        const boxes = packBoxes(encoded, (plain) => hostSide.seal(plain, BOX_AAD))
        const size = encoded.reduce((n, f) => n + f.byteLength + 3, 0)
        assert.ok(boxes.length <= Math.ceil(size / (MAX_BOX_PLAIN_BYTES / 2)), `${boxes.length} boxes for ${size} bytes`)
        const back: Frame[] = []
        for (const bytes of boxes) {
          assert.ok(bytes.byteLength <= HOST_LIMITS.maxFrameBytes, `a box of ${bytes.byteLength} bytes`)
          const box = decodeFrame(bytes)
          assert.equal(box.t, 'box')
          assert.deepEqual(bytesOf(encodeFrame(box)), bytesOf(dagCbor.encode(box)), 'the box encodes as @ipld/dag-cbor does')
          back.push(...unpackBox(edgeSide.open((box as { body: Uint8Array }).body, BOX_AAD), HOST_BOXED))
        }
        assert.deepEqual(back.map(plainOf), frames.map(plainOf))
      }),
      { numRuns: 100 }
    )
  })

  it('a box that does not open, or holds anything but whole frames of the sender, is refused', async () => {
    const { edgeSide, hostSide } = await channels()
    const tok = encodeFrame({ t: 'tok', id: 1, body: new Uint8Array(3) })
    // sealed by the other side, replayed, or out of order: the nonce or the key differ
    const [box] = packBoxes([tok], (plain) => hostSide.seal(plain, BOX_AAD))
    const body = (decodeFrame(box as Uint8Array) as { body: Uint8Array }).body
    assert.throws(() => hostSide.open(body, BOX_AAD), SealError)
    assert.equal(unpackBox(edgeSide.open(body, BOX_AAD), HOST_BOXED).length, 1)
    assert.throws(() => edgeSide.open(body, BOX_AAD), SealError)
    const refuse = (plain: Uint8Array, allowed = HOST_BOXED): void => assert.throws(() => unpackBox(plain, allowed), FrameError)
    refuse(new Uint8Array(0))
    refuse(joinFrames([tok]).subarray(0, 4))
    refuse(Buffer.concat([joinFrames([tok]), Buffer.from([0x80])]))
    refuse(joinFrames([tok]), EDGE_BOXED)
    refuse(joinFrames([encodeFrame({ t: 'req', id: 1, body: new Uint8Array(1) })]))
    refuse(joinFrames([encodeFrame({ t: 'box', body: new Uint8Array(20) })]))
    refuse(joinFrames([encodeFrame({ t: 'hello', enc: new Uint8Array(32) })]), EDGE_BOXED)
    refuse(joinFrames([new TextEncoder().encode('not cbor')]))
    // a frame too large for any box is refused when it is packed
    assert.throws(() => packBoxes([new Uint8Array(MAX_BOX_PLAIN_BYTES)], (p) => p), FrameError)
  })
})

describe('jobs: hand-written canonical DAG-CBOR', () => {
  const arbJob = fc
    .record({
      prompt: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
      messages: fc.array(
        fc.record({
          role: fc.constantFrom('system' as const, 'user' as const, 'assistant' as const),
          content: fc.string({ maxLength: 50 })
        }),
        { minLength: 1, maxLength: 4 }
      ),
      maxTokens: fc.integer({ min: 1, max: 4096 }),
      temperature: fc.option(fc.oneof(fc.constant(0), fc.constant(1), fc.double({ min: 0, max: 2, noNaN: true })), { nil: undefined }),
      seed: fc.option(fc.integer({ min: 0, max: 2 ** 31 }), { nil: undefined }),
      topK: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
      topP: fc.option(fc.oneof(fc.constant(1), fc.double({ min: 0.01, max: 1, noNaN: true })), { nil: undefined }),
      stop: fc.option(fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 4 }), { nil: undefined }),
      voucher: fc.option(fc.uint8Array({ maxLength: 200 }), { nil: undefined })
    })
    .map((r): Job => {
      const request = normalizeGenerateRequest({
        model: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku',
        ...(r.prompt !== undefined ? { prompt: r.prompt } : { messages: r.messages }),
        maxTokens: r.maxTokens,
        temperature: r.temperature,
        seed: r.seed,
        topK: r.topK,
        topP: r.topP,
        stop: r.stop
      })
      const job = jobFromRequest('0123456789abcdef0123456789abcdef', request)
      return r.voucher === undefined ? job : { ...job, voucher: r.voucher }
    })

  it('property: encodeJob gives the bytes @ipld/dag-cbor gives, and decodeJob what it decodes', () => {
    fc.assert(
      fc.property(arbJob, (job) => {
        const bytes = encodeJob(job)
        assert.deepEqual(bytesOf(bytes), bytesOf(dagCbor.encode(job)))
        assert.deepEqual(decodeJob(bytes), dagCbor.decode(bytes))
      }),
      { numRuns: 300 }
    )
  })

  it('decodeJob refuses what the generic decoder refuses, and reads other shapes as it does', () => {
    const job = jobFromRequest('j', normalizeGenerateRequest({ model: 'm', prompt: 'p', maxTokens: 4 }))
    const bytes = encodeJob(job)
    assert.throws(() => decodeJob(bytes.subarray(0, bytes.byteLength - 1)))
    assert.throws(() => decodeJob(Buffer.concat([bytes, Buffer.from([0])])))
    for (const other of [
      { ...job, seed: -1 },
      { ...job, extra: 'x' },
      { ...job, temperature: 2 ** 60 },
      { ...job, topP: 0.5 }
    ]) {
      const b = dagCbor.encode(other)
      assert.deepEqual(decodeJob(b), dagCbor.decode(b))
    }
  })
})
