import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { isModelId, schemaModelId, schemaParams, validParams } from '../../src/inference/engine.ts'
import { GenerationStream } from '../../src/inference/generation-stream.ts'
import {
  EchoEngine,
  type GenerateRequest,
  type Generation,
  type GenerationResult,
  type InferenceInputError,
  normalizeGenerateRequest,
  renderChatFallback
} from '../../src/inference/index.ts'
import { encodeFrame, FrameError, FrameReader } from '../../src/inference/ipc.ts'
import { INFERENCE_DEFAULTS, INFERENCE_LIMITS } from '../../src/params/index.ts'

async function drain(g: Generation): Promise<{ pieces: string[]; result: GenerationResult }> {
  const pieces: string[] = []
  for await (const p of g) pieces.push(p)
  return { pieces, result: await g.result }
}

const inputError = (code: string) => (err: InferenceInputError) => err.code === code && err.hint != null

test('requests are checked the same way for every engine: defaults filled, bad values refused with INVALID_PARAMS', () => {
  const n = normalizeGenerateRequest({ model: 'm', prompt: 'hi', maxTokens: 5 })
  assert.deepEqual(n.params, { maxTokens: 5, temperature: 0, seed: INFERENCE_DEFAULTS.seed, topK: null, topP: null, stop: [] })
  const bad: Array<Partial<GenerateRequest>> = [
    { maxTokens: 0 },
    { maxTokens: INFERENCE_LIMITS.maxGenerateTokens + 1 },
    { maxTokens: 1.5 },
    { temperature: -0.1 },
    { temperature: INFERENCE_LIMITS.maxTemperature + 0.01 },
    { seed: -1 },
    { seed: 2 ** 32 },
    { topP: 0 },
    { topK: -1 },
    { stop: ['a', 'b', 'c', 'd', 'e'] },
    { stop: [''] },
    { stop: ['é'.repeat(INFERENCE_LIMITS.maxStopSequenceBytes / 2 + 1)] },
    { model: '' }
  ]
  for (const patch of bad) {
    const request = { model: 'm', prompt: 'hi', maxTokens: 5, ...patch } as GenerateRequest
    assert.throws(() => normalizeGenerateRequest(request), inputError('INVALID_PARAMS'), JSON.stringify(patch))
  }
  assert.throws(
    () => normalizeGenerateRequest({ model: 'm', prompt: 'a', messages: [], maxTokens: 1 } as unknown as GenerateRequest),
    inputError('INVALID_PARAMS')
  )
  assert.throws(
    () => normalizeGenerateRequest({ model: 'm', messages: [{ role: 'robot', content: 'x' }], maxTokens: 1 } as unknown as GenerateRequest),
    inputError('INVALID_PARAMS')
  )
})

test('property: the plain checks of a request accept and fill in exactly what the zod schemas do', () => {
  const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
  const runs = Number(process.env.FC_RUNS ?? 2_000)
  console.log(`request checks: FC_SEED=${seed} FC_RUNS=${runs}`)
  const L = INFERENCE_LIMITS
  // mostly values in range (so that whole requests pass too), else values at and around every
  // bound, of the wrong types, or absent
  const odd = fc.constantFrom<unknown>(undefined, null, Number.NaN, Number.POSITIVE_INFINITY, -0, '1', true, [], {}, 2 ** 53, 1.5)
  const edges = (bounds: number[]) => fc.constantFrom(...bounds.flatMap((b) => [b - 1, b - 0.5, b, b + 0.5, b + 1]))
  const num = (inRange: fc.Arbitrary<number>, bounds: number[]) =>
    fc.oneof(
      { arbitrary: inRange, weight: 12 },
      { arbitrary: edges(bounds), weight: 1 },
      { arbitrary: fc.double(), weight: 1 },
      { arbitrary: odd, weight: 1 }
    )
  const int = (min: number, max: number) => num(fc.integer({ min, max }), [min, max])
  const text = (max: number) =>
    fc.oneof(
      { arbitrary: fc.string({ minLength: 1, maxLength: 8 }), weight: 6 },
      { arbitrary: fc.constantFrom('', 'x'.repeat(max), 'x'.repeat(max + 1), 'é'.repeat(max / 2), 'é'.repeat(max / 2 + 1)), weight: 1 },
      { arbitrary: odd, weight: 1 }
    )
  const params = fc.record(
    {
      maxTokens: int(1, L.maxGenerateTokens),
      temperature: num(fc.double({ min: 0, max: L.maxTemperature, noNaN: true }), [0, L.maxTemperature]),
      seed: int(0, L.maxSeed),
      topK: int(0, L.maxTopK),
      topP: num(fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }), [0, 1]),
      stop: fc.oneof(
        { arbitrary: fc.array(text(L.maxStopSequenceBytes), { maxLength: L.maxStopSequences }), weight: 4 },
        {
          arbitrary: fc.array(text(L.maxStopSequenceBytes), { minLength: L.maxStopSequences + 1, maxLength: L.maxStopSequences + 1 }),
          weight: 1
        },
        { arbitrary: odd, weight: 1 }
      )
    },
    { requiredKeys: [] }
  )
  const seen = { valid: 0, refused: 0, model: 0 }
  fc.assert(
    fc.property(params, text(L.maxModelIdBytes), (p, model) => {
      const want = schemaParams(p as never)
      assert.deepEqual(validParams(p as never), want)
      seen[want === undefined ? 'refused' : 'valid']++
      assert.equal(isModelId(model), schemaModelId(model))
      if (isModelId(model)) seen.model++
    }),
    { seed, numRuns: runs }
  )
  // both outcomes must have been tried, or the agreement says little
  console.log(`request checks: ${JSON.stringify(seen)}`)
  assert.ok(seen.valid >= runs / 20 && seen.refused >= runs / 10 && seen.model >= runs / 10, JSON.stringify(seen))
})

test('prompts over the byte limit are refused with PROMPT_TOO_LARGE, counting UTF-8 bytes, not characters', () => {
  const max = INFERENCE_LIMITS.maxPromptBytes
  assert.doesNotThrow(() => normalizeGenerateRequest({ model: 'm', prompt: 'a'.repeat(max), maxTokens: 1 }))
  assert.throws(() => normalizeGenerateRequest({ model: 'm', prompt: 'a'.repeat(max + 1), maxTokens: 1 }), inputError('PROMPT_TOO_LARGE'))
  // fewer characters than the limit, more bytes
  assert.throws(
    () => normalizeGenerateRequest({ model: 'm', prompt: 'é'.repeat(max / 2 + 1), maxTokens: 1 }),
    inputError('PROMPT_TOO_LARGE')
  )
  const half = { role: 'user' as const, content: 'b'.repeat(max / 2 + 1) }
  assert.throws(() => normalizeGenerateRequest({ model: 'm', messages: [half, half], maxTokens: 1 }), inputError('PROMPT_TOO_LARGE'))
  const many = Array.from({ length: INFERENCE_LIMITS.maxChatMessages + 1 }, () => ({ role: 'user' as const, content: '' }))
  assert.throws(() => normalizeGenerateRequest({ model: 'm', messages: many, maxTokens: 1 }), inputError('PROMPT_TOO_LARGE'))
})

test('the fallback chat template puts each role marker on its own line and ends with an open assistant turn', () => {
  assert.equal(
    renderChatFallback([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' }
    ]),
    '<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n'
  )
})

test('IPC frames: split anywhere they reassemble; an oversized length is refused before its body is read', () => {
  const frames = Buffer.concat([encodeFrame({ t: 'a', n: 1 }), encodeFrame({ t: 'b', s: 'é'.repeat(100) })])
  for (const cut of [1, 3, 4, 5, 17, frames.byteLength - 1]) {
    const reader = new FrameReader(1024)
    const got = [...reader.push(frames.subarray(0, cut)), ...reader.push(frames.subarray(cut))]
    assert.deepEqual(got, [
      { t: 'a', n: 1 },
      { t: 'b', s: 'é'.repeat(100) }
    ])
  }
  const head = Buffer.alloc(4)
  head.writeUInt32BE(1025)
  assert.throws(() => new FrameReader(1024).push(head), FrameError)
  assert.throws(() => encodeFrame({ s: 'x'.repeat(2000) }, 1024), FrameError)
  const junk = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{')])
  assert.throws(() => new FrameReader(1024).push(junk), /not JSON/)
})

test('echo engine: answers with the prompt, cut to maxTokens, one code point per piece', async () => {
  const engine = new EchoEngine()
  await engine.start()
  await engine.load({ id: 'bafy-echo', path: '/nonexistent/is/fine.gguf' })
  assert.deepEqual(
    engine.models().map((m) => m.id),
    ['bafy-echo']
  )
  const whole = await drain(engine.generate({ model: 'bafy-echo', prompt: 'héllo 👋', maxTokens: 100 }))
  assert.deepEqual(whole.pieces, ['h', 'é', 'l', 'l', 'o', ' ', '👋'])
  assert.equal(whole.result.text, 'héllo 👋')
  assert.equal(whole.result.finishReason, 'stop')
  assert.equal(whole.result.promptTokens, 7)
  assert.equal(whole.result.completionTokens, 7)
  assert.equal(await engine.countTokens('bafy-echo', { prompt: 'héllo 👋' }), 7)
  assert.deepEqual(await engine.tokenize('bafy-echo', 'hé'), [0x68, 0xe9])

  const cut = await drain(engine.generate({ model: 'bafy-echo', prompt: 'abcdef', maxTokens: 4 }))
  assert.equal(cut.result.text, 'abcd')
  assert.equal(cut.result.finishReason, 'length')
  assert.equal(cut.result.completionTokens, 4)

  const stopped = await drain(engine.generate({ model: 'bafy-echo', prompt: 'one. two. three.', maxTokens: 100, stop: ['three', ' two'] }))
  assert.equal(stopped.result.text, 'one.')
  assert.equal(stopped.result.stopSequence, ' two')
  assert.equal(stopped.result.finishReason, 'stop')
  assert.equal(stopped.pieces.join(''), stopped.result.text)

  const messages = [
    { role: 'system' as const, content: 'sys' },
    { role: 'user' as const, content: 'question' }
  ]
  const chat = await drain(engine.generate({ model: 'bafy-echo', messages, maxTokens: 100 }))
  assert.equal(chat.result.text, 'question')
  assert.equal(chat.result.promptTokens, Array.from(renderChatFallback(messages)).length)
  await engine.stop()
  assert.deepEqual(engine.models(), [])
})

test('echo engine: refuses what every engine refuses, and stops when aborted or when the reader leaves', async () => {
  const engine = new EchoEngine({ tokenIntervalMs: 5, contextSize: 64 })
  await engine.load({ id: 'm', path: 'x' })
  assert.throws(() => engine.generate({ model: 'other', prompt: 'a', maxTokens: 1 }), inputError('MODEL_NOT_LOADED'))
  assert.throws(() => engine.generate({ model: 'm', prompt: 'a', maxTokens: 0 }), inputError('INVALID_PARAMS'))
  await assert.rejects(engine.load({ id: 'm', path: 'x' }), { code: 'MODEL_ALREADY_LOADED' })
  // over the context: refused through the generation, as by a real model
  const long = engine.generate({ model: 'm', prompt: 'a'.repeat(64), maxTokens: 1 })
  await assert.rejects(drain(long), inputError('PROMPT_TOO_LONG'))

  const controller = new AbortController()
  const g = engine.generate({ model: 'm', prompt: 'x'.repeat(60), maxTokens: 60 }, { signal: controller.signal })
  const pieces: string[] = []
  for await (const p of g) {
    pieces.push(p)
    if (pieces.length === 3) controller.abort()
  }
  const result = await g.result
  assert.equal(result.finishReason, 'aborted')
  assert.equal(result.text, pieces.join(''))
  assert.ok(pieces.length >= 3 && pieces.length < 10, `${pieces.length} pieces after abort at 3`)

  const left = engine.generate({ model: 'm', prompt: 'y'.repeat(60), maxTokens: 60 })
  for await (const _ of left) break
  const leftResult = await left.result
  assert.equal(leftResult.finishReason, 'aborted')
  assert.ok(leftResult.completionTokens < 10)
})

test('a cancelled generation delivers no piece after the cancel: waiting pieces are dropped, from the text too', async () => {
  const stream = new GenerationStream()
  for (const piece of ['a', 'b', 'c']) stream.push(piece)
  const taken: string[] = []
  for await (const piece of stream) {
    taken.push(piece)
    // the producer cancels while two pieces still wait for the consumer
    stream.abort({
      text: 'abc',
      finishReason: 'aborted',
      stopSequence: null,
      promptTokens: 1,
      completionTokens: 3,
      seed: 0,
      timeToFirstTokenMs: 1,
      durationMs: 2
    })
  }
  assert.deepEqual(taken, ['a'])
  const result = await stream.result
  assert.equal(result.text, 'a')
  assert.equal(result.completionTokens, 3, 'the tokens produced still count')
})

test('batches(): every piece ready at each step, in order; a failure and an early leave reach the consumer and the producer', async () => {
  const result = {
    text: 'abcd',
    finishReason: 'stop' as const,
    stopSequence: null,
    promptTokens: 1,
    completionTokens: 4,
    seed: 0,
    timeToFirstTokenMs: 1,
    durationMs: 2
  }
  const stream = new GenerationStream()
  for (const piece of ['a', 'b', 'c']) stream.push(piece)
  const steps: string[][] = []
  const consumed = (async () => {
    for await (const pieces of stream.batches()) steps.push(pieces)
  })()
  await new Promise((resolve) => setImmediate(resolve))
  stream.push('d')
  stream.finish(result)
  await consumed
  assert.deepEqual(steps, [['a', 'b', 'c'], ['d']])
  assert.throws(() => stream.batches(), /only once/)
  await assert.rejects(async () => {
    for await (const _ of stream) break
  }, /only once/)

  const failing = new GenerationStream()
  failing.push('x')
  failing.fail(new Error('engine broke'))
  const got: string[][] = []
  await assert.rejects(async () => {
    for await (const pieces of failing.batches()) got.push(pieces)
  }, /engine broke/)
  assert.deepEqual(got, [['x']], 'pieces before the failure are delivered')

  let left = 0
  const leaving = new GenerationStream(() => left++)
  leaving.push('y')
  for await (const _ of leaving.batches()) break
  assert.equal(left, 1, 'a consumer leaving early tells the producer')
})
