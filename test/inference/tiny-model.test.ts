import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { readGgufFileInfo } from 'node-llama-cpp'
import { encodeGguf, GGUF_ALIGNMENT, TINY_VOCABULARY_SIZE, tinyModelBytes, writeTinyModel } from '../../src/inference/index.ts'
import { TINY_MODEL } from '../../src/params/index.ts'
import { tempDir } from '../helpers.ts'

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

test('one seed gives byte-identical files, other seeds give other weights but the same layout', async (t) => {
  const a = tinyModelBytes({ seed: 7 })
  const b = tinyModelBytes({ seed: 7 })
  const c = tinyModelBytes({ seed: 8 })
  assert.equal(sha256(a), sha256(b))
  assert.notEqual(sha256(a), sha256(c))
  assert.equal(a.byteLength, c.byteLength)
  // about 2 MB, all F32
  assert.ok(a.byteLength > 1_500_000 && a.byteLength < 2_500_000, `size ${a.byteLength}`)
  // the weights differ almost everywhere, not in one corner
  let differing = 0
  for (let i = a.byteLength - 1_000_000; i < a.byteLength; i += 4) if (a[i] !== c[i]) differing++
  assert.ok(differing > 200_000, `only ${differing} of 250000 sampled words differ`)

  const dir = await tempDir(t)
  const written = await writeTinyModel(join(dir, 'tiny.gguf'), { seed: 7 })
  assert.equal(written.bytes, a.byteLength)
  assert.equal(sha256(await readFile(written.path)), sha256(a))
})

test('the seed-0 model has a pinned hash: a change to the recipe changes every CID, so it must be deliberate', () => {
  assert.equal(sha256(tinyModelBytes({ seed: 0 })), '05085891d7282e55445bd832e2cdc704065a3acddef90e660d41772a4ce6b952')
})

test('seeds outside unsigned 32 bits are refused', () => {
  for (const seed of [-1, 2 ** 32, 1.5, Number.NaN]) assert.throws(() => tinyModelBytes({ seed }), RangeError)
  assert.doesNotThrow(() => tinyModelBytes({ seed: 2 ** 32 - 1 }))
})

test('an independent GGUF reader (node-llama-cpp, pure JS) reads back the metadata and tensor layout', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'tiny.gguf')
  await writeTinyModel(path, { seed: 3, chatTemplate: '{{ messages }}' })
  const info = await readGgufFileInfo(path, { readTensorInfo: true })
  assert.equal(info.version, 3)
  const md = info.metadata as unknown as Record<string, Record<string, unknown>>
  assert.equal(md.general?.architecture, 'llama')
  assert.equal(md.general?.name, TINY_MODEL.name)
  assert.match(String(md.general?.description), /seed 3; its text is noise/)
  const llama = md.llama as Record<string, unknown> & { attention: Record<string, unknown> }
  assert.equal(llama.embedding_length, TINY_MODEL.embeddingLength)
  assert.equal(llama.context_length, TINY_MODEL.contextLength)
  assert.equal(llama.block_count, TINY_MODEL.blockCount)
  assert.equal(llama.attention.head_count, TINY_MODEL.headCount)
  const tokenizer = md.tokenizer as { ggml: { tokens: string[]; token_type: number[] }; chat_template: string }
  assert.equal(tokenizer.chat_template, '{{ messages }}')
  assert.equal(tokenizer.ggml.tokens.length, TINY_VOCABULARY_SIZE)
  assert.deepEqual(tokenizer.ggml.tokens.slice(0, 4), ['<unk>', '<s>', '</s>', '<0x00>'])
  assert.equal(tokenizer.ggml.tokens[3 + 0xff], '<0xFF>')
  assert.ok(tokenizer.ggml.token_type.slice(3, 3 + 256).every((type) => type === 6))

  const tensors = info.tensorInfo ?? []
  assert.equal(tensors.length, 2 + 9 * TINY_MODEL.blockCount + 1)
  const byName = new Map(tensors.map((x) => [x.name, x]))
  assert.deepEqual(byName.get('token_embd.weight')?.dimensions.map(Number), [TINY_MODEL.embeddingLength, TINY_VOCABULARY_SIZE])
  assert.deepEqual(byName.get('blk.1.ffn_down.weight')?.dimensions.map(Number), [TINY_MODEL.feedForwardLength, TINY_MODEL.embeddingLength])
  for (const x of tensors) assert.equal(Number(x.offset) % GGUF_ALIGNMENT, 0, `${x.name} is not aligned`)
})

test('the writer refuses a tensor whose data does not match its dims', () => {
  assert.throws(() => encodeGguf([], [{ name: 'w', dims: [2, 3], data: new Float32Array(5) }]), /hold 6 values, data has 5/)
})
