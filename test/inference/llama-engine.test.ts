import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import {
  type GenerateRequest,
  type Generation,
  type GenerationResult,
  type InferenceInputError,
  type InferenceTimeoutError,
  type InferenceWorkerError,
  LlamaEngine,
  type ModelLoadError,
  renderChatFallback,
  tinyModelBytes,
  writeTinyModel
} from '../../src/inference/index.ts'
import { INFERENCE_LIMITS, TINY_MODEL } from '../../src/params/index.ts'
import { killPid, killWorkers, withTensorDim, withU32Metadata, workerPids } from './fixtures.ts'

const MODEL = 'bafk-tiny-seed-1'
const PROMPT = 'The mesh says hello.'

async function drain(g: Generation): Promise<{ pieces: string[]; result: GenerationResult }> {
  const pieces: string[] = []
  for await (const p of g) pieces.push(p)
  return { pieces, result: await g.result }
}

describe('llama engine on the tiny model', () => {
  let dir: string
  let engine: LlamaEngine
  const log = pino({ level: process.env.LLMESH_TEST_LOG ?? 'silent' })
  const run = (request: Partial<GenerateRequest>, signal?: AbortSignal) =>
    drain(engine.generate({ model: MODEL, prompt: PROMPT, maxTokens: 40, ...request } as GenerateRequest, { signal }))

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'llmesh-inference-'))
    await writeTinyModel(join(dir, 'tiny.gguf'), { seed: 1 })
    engine = new LlamaEngine({ log }, { maxQueuedGenerations: 1 })
    await engine.start()
    const info = await engine.load({ id: MODEL, path: join(dir, 'tiny.gguf') })
    assert.equal(info.name, TINY_MODEL.name)
    assert.equal(info.contextSize, TINY_MODEL.contextLength)
    assert.equal(info.chatTemplate, 'fallback')
  })

  after(async () => {
    try {
      await engine?.stop()
    } finally {
      const left = workerPids()
      killWorkers()
      if (dir != null) await rm(dir, { recursive: true, force: true })
      assert.deepEqual(left, [], 'every worker exits when the engine stops')
    }
  })

  it('runs the model in a child process and streams pieces that add up to the text', async () => {
    const pid = engine.workerPid(MODEL)
    assert.ok(pid != null && pid !== process.pid)
    assert.deepEqual(workerPids(), [pid])
    const { pieces, result } = await run({ maxTokens: 64 })
    assert.ok(pieces.length > 1, 'streamed in more than one piece')
    assert.equal(pieces.join(''), result.text)
    assert.equal(result.finishReason, 'length')
    assert.equal(result.completionTokens, 64)
    // the tiny model only ever picks newline or printable ASCII, one character per token
    assert.match(result.text, /^[\n\x20-\x7e]{64}$/)
    assert.ok(result.timeToFirstTokenMs != null && result.timeToFirstTokenMs <= result.durationMs)
  })

  it('greedy decoding is reproducible, also after a different request shared the sequence', async () => {
    const first = await run({ temperature: 0, maxTokens: 80 })
    // a prompt with the same start: a reused cache would feed the next request different numbers
    await run({ prompt: `${PROMPT} And then some.`, temperature: 0.9, seed: 5, maxTokens: 30 })
    const second = await run({ temperature: 0, maxTokens: 80 })
    assert.equal(second.result.text, first.result.text)
    const other = await run({ prompt: 'Something else entirely', temperature: 0, maxTokens: 80 })
    assert.notEqual(other.result.text, first.result.text)
  })

  it('seeded sampling is reproducible, and another seed gives another text', async () => {
    const a = await run({ temperature: 1, seed: 42, maxTokens: 80 })
    const b = await run({ temperature: 1, seed: 42, maxTokens: 80 })
    const c = await run({ temperature: 1, seed: 43, maxTokens: 80 })
    assert.equal(a.result.seed, 42)
    assert.equal(b.result.text, a.result.text)
    assert.notEqual(c.result.text, a.result.text)
    const greedy = await run({ temperature: 0, maxTokens: 80 })
    assert.notEqual(a.result.text, greedy.result.text)
    // top-k 1 leaves only the most likely token: sampling becomes greedy whatever the seed
    const topK1 = await run({ temperature: 1, seed: 99, topK: 1, maxTokens: 80 })
    assert.equal(topK1.result.text, greedy.result.text)
    const topP = await run({ temperature: 1, seed: 42, topP: 0.5, maxTokens: 80 })
    assert.equal((await run({ temperature: 1, seed: 42, topP: 0.5, maxTokens: 80 })).result.text, topP.result.text)
  })

  it('respects maxTokens exactly and counts prompt tokens as tokenize and countTokens do', async () => {
    for (const maxTokens of [1, 7, 33]) {
      const { result } = await run({ maxTokens })
      assert.equal(result.completionTokens, maxTokens)
      assert.equal(result.text.length, maxTokens)
      assert.equal(result.finishReason, 'length')
    }
    const tokens = await engine.tokenize(MODEL, 'Hi there')
    // beginning of sequence, H, i, the space piece, t, h, e, r, e
    assert.deepEqual(tokens, [1, 3 + 0x48, 3 + 0x69, 259, 3 + 0x74, 3 + 0x68, 3 + 0x65, 3 + 0x72, 3 + 0x65])
    assert.equal(await engine.countTokens(MODEL, { prompt: 'Hi there' }), tokens.length)
    const { result } = await run({ prompt: 'Hi there', maxTokens: 3 })
    assert.equal(result.promptTokens, tokens.length)
    // a two-byte character is two byte tokens
    assert.equal(await engine.countTokens(MODEL, { prompt: 'é' }), 3)
  })

  it('stops before a stop sequence, which is neither returned nor streamed', async () => {
    const { result: full } = await run({ maxTokens: 60 })
    const stop = full.text.slice(30, 33)
    const at = full.text.indexOf(stop)
    const { pieces, result } = await run({ maxTokens: 60, stop: ['never-generated', stop] })
    assert.equal(result.text, full.text.slice(0, at))
    assert.equal(pieces.join(''), result.text)
    assert.equal(result.finishReason, 'stop')
    assert.equal(result.stopSequence, stop)
    assert.equal(result.completionTokens, at + stop.length)
  })

  it('turns chat messages into a prompt with the fallback template when the model has none', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are noise.' },
      { role: 'user' as const, content: 'Say something.' }
    ]
    const asPrompt = await engine.countTokens(MODEL, { prompt: renderChatFallback(messages) })
    assert.equal(await engine.countTokens(MODEL, { messages }), asPrompt)
    const chat = await drain(engine.generate({ model: MODEL, messages, maxTokens: 20 }))
    const plain = await run({ prompt: renderChatFallback(messages), maxTokens: 20 })
    assert.equal(chat.result.promptTokens, asPrompt)
    assert.equal(chat.result.text, plain.result.text)
  })

  it('cancels promptly through an AbortSignal, and the model serves the next request', async () => {
    const controller = new AbortController()
    const g = engine.generate(
      { model: MODEL, prompt: PROMPT, maxTokens: INFERENCE_LIMITS.maxGenerateTokens, temperature: 1 },
      { signal: controller.signal }
    )
    const pieces: string[] = []
    let abortedAt = 0
    for await (const p of g) {
      pieces.push(p)
      if (pieces.length === 5) {
        abortedAt = performance.now()
        controller.abort()
      }
    }
    const result = await g.result
    const stoppedIn = performance.now() - abortedAt
    assert.equal(result.finishReason, 'aborted')
    assert.equal(result.text, pieces.join(''))
    assert.equal(pieces.length, 5, 'no piece is delivered after the abort')
    // uncancelled, it would run to the end of the context (~1000 tokens)
    assert.ok(result.completionTokens < 50, `${result.completionTokens} tokens`)
    assert.ok(stoppedIn < 100, `ended ${stoppedIn} ms after the abort`)
    // the worker stopped too: the next request (one sequence) does not wait ~1000 tokens for it
    const next = await run({ maxTokens: 10 })
    assert.equal(next.result.completionTokens, 10)
    assert.ok((next.result.timeToFirstTokenMs ?? Infinity) < 250, `next request waited ${next.result.timeToFirstTokenMs} ms`)
    // an already-aborted signal ends the generation at once
    const pre = await run({ maxTokens: 10 }, AbortSignal.abort())
    assert.equal(pre.result.finishReason, 'aborted')
    assert.equal(pre.result.completionTokens, 0)
  })

  it('queues generations beyond its sequences, and refuses beyond the queue bound', async () => {
    const a = engine.generate({ model: MODEL, prompt: PROMPT, maxTokens: 200 })
    const b = engine.generate({ model: MODEL, prompt: PROMPT, maxTokens: 200 })
    assert.throws(() => engine.generate({ model: MODEL, prompt: PROMPT, maxTokens: 5 }), { code: 'INFERENCE_BUSY' })
    const [ra, rb] = await Promise.all([drain(a), drain(b)])
    assert.equal(ra.result.text, rb.result.text)
    assert.equal(ra.result.completionTokens, 200)
  })

  it('refuses oversized input: too many bytes at once, too many tokens for the context through the generation', async () => {
    assert.throws(
      () => engine.generate({ model: MODEL, prompt: 'x'.repeat(INFERENCE_LIMITS.maxPromptBytes + 1), maxTokens: 1 }),
      (err: InferenceInputError) => err.code === 'PROMPT_TOO_LARGE'
    )
    await assert.rejects(engine.countTokens(MODEL, { prompt: 'x'.repeat(INFERENCE_LIMITS.maxPromptBytes + 1) }), {
      code: 'PROMPT_TOO_LARGE'
    })
    assert.throws(() => engine.generate({ model: MODEL, prompt: 'x', maxTokens: INFERENCE_LIMITS.maxGenerateTokens + 1 }), {
      code: 'INVALID_PARAMS'
    })
    assert.throws(() => engine.generate({ model: 'not-loaded', prompt: 'x', maxTokens: 1 }), { code: 'MODEL_NOT_LOADED' })
    // fits the byte limit, not the 1024-token context
    const long = engine.generate({ model: MODEL, prompt: 'y'.repeat(TINY_MODEL.contextLength), maxTokens: 5 })
    await assert.rejects(
      drain(long),
      (err: InferenceInputError) => err.code === 'PROMPT_TOO_LONG' && /1024-token context/.test(err.message)
    )
    assert.equal((await run({ maxTokens: 3 })).result.completionTokens, 3)
  })

  it('fails a malformed GGUF with a typed error, leaves no worker behind, and keeps serving the good model', async () => {
    const good = tinyModelBytes({ seed: 1 })
    const garbage = new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff)
    const cases: Array<{ name: string; bytes: Uint8Array; code: ModelLoadError['code']; message: RegExp }> = [
      { name: 'garbage', bytes: garbage, code: 'MODEL_INVALID', message: /not a GGUF file/ },
      { name: 'truncated', bytes: good.subarray(0, good.length >> 1), code: 'MODEL_INVALID', message: /not within the file bounds/ },
      {
        name: 'absurd-dims',
        bytes: withTensorDim(good, 'token_embd.weight', 1, 1n << 40n),
        code: 'MODEL_INVALID',
        message: /tensor .* has offset/
      },
      // a head count of 0 makes llama.cpp abort the process (GGML_ASSERT), not throw
      {
        name: 'assert',
        bytes: withU32Metadata(good, 'llama.attention.head_count', 0),
        code: 'MODEL_CRASHED',
        message: /SIGABRT.*GGML_ASSERT/
      }
    ]
    for (const c of cases) {
      const path = join(dir, `${c.name}.gguf`)
      await writeFile(path, c.bytes)
      await assert.rejects(
        engine.load({ id: c.name, path }),
        (err: ModelLoadError) => err.code === c.code && err.modelId === c.name && c.message.test(err.message) && err.hint != null,
        c.name
      )
      assert.deepEqual(workerPids(), [engine.workerPid(MODEL)], `${c.name}: only the good model's worker is left`)
      assert.deepEqual(
        engine.models().map((m) => m.id),
        [MODEL]
      )
      assert.equal((await run({ maxTokens: 4 })).result.completionTokens, 4)
    }
    await assert.rejects(engine.load({ id: 'missing', path: join(dir, 'missing.gguf') }), { code: 'MODEL_NOT_FOUND' })
    await assert.rejects(engine.load({ id: MODEL, path: join(dir, 'tiny.gguf') }), { code: 'MODEL_ALREADY_LOADED' })
  })

  it('a worker that dies mid-generation fails its requests with a typed error; loading again serves the same tokens', async () => {
    const before = await run({ maxTokens: 50 })
    const pid = engine.workerPid(MODEL) as number
    const running = engine.generate({ model: MODEL, prompt: PROMPT, maxTokens: 1000 })
    const queued = engine.generate({ model: MODEL, prompt: PROMPT, maxTokens: 10 })
    let pieces = 0
    await assert.rejects(
      (async () => {
        for await (const _ of running) if (++pieces === 3) process.kill(pid, 'SIGKILL')
      })(),
      (err: InferenceWorkerError) => err.code === 'WORKER_CRASHED' && /SIGKILL/.test(err.message)
    )
    await assert.rejects(running.result, { code: 'WORKER_CRASHED' })
    await assert.rejects(queued.result, { code: 'WORKER_CRASHED' })
    assert.deepEqual(engine.models(), [])
    assert.throws(() => engine.generate({ model: MODEL, prompt: PROMPT, maxTokens: 1 }), { code: 'MODEL_NOT_LOADED' })

    await engine.load({ id: MODEL, path: join(dir, 'tiny.gguf') })
    assert.notEqual(engine.workerPid(MODEL), pid)
    const afterReload = await run({ maxTokens: 50 })
    assert.equal(afterReload.result.text, before.result.text, 'another process, the same tokens')
  })

  it('cancels a generation that runs past its time limit with INFERENCE_TIMEOUT, then serves the next one', async (t) => {
    const timed = new LlamaEngine({ log }, { generationTimeoutMs: 150 })
    const loading = timed.load({ id: MODEL, path: join(dir, 'tiny.gguf') })
    t.after(async () => {
      const pid = timed.workerPid(MODEL)
      await timed.stop().finally(() => pid != null && killPid(pid))
    })
    await loading
    // ~1000 tokens take well over 150 ms at ~2000 tokens/s
    const slow = timed.generate({ model: MODEL, prompt: PROMPT, maxTokens: 1000 })
    await assert.rejects(drain(slow), (err: InferenceTimeoutError) => err.code === 'INFERENCE_TIMEOUT' && err.hint != null)
    const next = await drain(timed.generate({ model: MODEL, prompt: PROMPT, maxTokens: 20 }))
    assert.equal(next.result.completionTokens, 20)
    assert.ok((next.result.timeToFirstTokenMs ?? Infinity) < 250, `the timed-out generation was not stopped in the worker`)
  })

  it("uses the model's own chat template when the file has one", async () => {
    const path = join(dir, 'chatml.gguf')
    const template =
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    await writeTinyModel(path, { seed: 1, chatTemplate: template })
    const info = await engine.load({ id: 'chatml', path })
    assert.equal(info.chatTemplate, 'model')
    const messages = [{ role: 'user' as const, content: 'Hi' }]
    const withTemplate = await engine.countTokens('chatml', { messages })
    // the ChatML markers are longer than the fallback's
    assert.ok(withTemplate > (await engine.countTokens('chatml', { prompt: renderChatFallback(messages) })), `${withTemplate} tokens`)
    const { result } = await drain(engine.generate({ model: 'chatml', messages, maxTokens: 8 }))
    assert.equal(result.promptTokens, withTemplate)
    assert.equal(result.completionTokens, 8)
    await engine.unload('chatml')
    assert.deepEqual(
      engine.models().map((m) => m.id),
      [MODEL]
    )
  })
})
