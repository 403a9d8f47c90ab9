import { rename, writeFile } from 'node:fs/promises'
import { TINY_MODEL } from '../params/index.ts'
import { encodeGguf, type GgufMetadataEntry, type GgufTensor } from './gguf-writer.ts'

/**
 * The built-in tiny model: a LLaMA-architecture GGUF with a byte vocabulary and weights drawn
 * from a seeded integer PRNG, so one seed always gives the same file (and CID) on any machine.
 * Its text is noise. It exists so tests and a fresh node can run the real llama.cpp path
 * without downloading anything.
 *
 * Two deliberate shapes in the noise: embedding dimension 0 is a constant that no layer writes
 * to, and the output layer uses it to push every token but newline and printable ASCII far
 * down. So the model never ends a generation by itself (it runs to `maxTokens` or a stop
 * sequence) and every generated token is one readable character.
 */

export interface TinyModelOptions {
  /** Unsigned 32-bit seed of the weights. */
  seed: number
  /** A Jinja chat template stored as `tokenizer.chat_template`; the default model has none. */
  chatTemplate?: string
}

const SPECIAL_TOKENS = ['<unk>', '<s>', '</s>'] as const
/** SentencePiece writes spaces as U+2581; as a normal piece it detokenizes back to a space. */
const SPACE_PIECE = '\u2581'
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const
const FIRST_BYTE_TOKEN = SPECIAL_TOKENS.length
export const TINY_VOCABULARY_SIZE = SPECIAL_TOKENS.length + 256 + 1
/** Weights in the built-in model: what a chain registers as its parameter count. */
export function tinyModelParameters(): bigint {
  const E = BigInt(TINY_MODEL.embeddingLength)
  const F = BigInt(TINY_MODEL.feedForwardLength)
  const V = BigInt(TINY_VOCABULARY_SIZE)
  const kv = (E / BigInt(TINY_MODEL.headCount)) * BigInt(TINY_MODEL.headCountKv)
  const perLayer = 2n * E + 2n * E * E + 2n * E * kv + 3n * E * F
  return 2n * E * V + BigInt(TINY_MODEL.blockCount) * perLayer + E
}

/** How far below the rest the output layer pushes tokens the model must never pick. */
const SUPPRESSED_LOGIT_WEIGHT = -1000

/**
 * xoshiro128** seeded through splitmix32: integer-only, so identical in every JS engine.
 * Returns a function giving the next unsigned 32-bit value.
 */
function seededPrng(seed: number): () => number {
  let x = seed >>> 0
  const splitmix32 = (): number => {
    x = (x + 0x9e3779b9) >>> 0
    let z = x
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
  const s = [splitmix32(), splitmix32(), splitmix32(), splitmix32()] as [number, number, number, number]
  const rotl = (v: number, k: number): number => ((v << k) | (v >>> (32 - k))) >>> 0
  return () => {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0
    const t = (s[1] << 9) >>> 0
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 11)
    return result
  }
}

/** Uniform values in [-scale, scale) from the top 24 bits of the PRNG (exact in F32 before scaling). */
function uniform(next: () => number, count: number, scale: number): Float32Array {
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) out[i] = (((next() >>> 8) / 2 ** 24) * 2 - 1) * scale
  return out
}

function filled(count: number, value: number): Float32Array {
  return new Float32Array(count).fill(value)
}

/** Byte tokens the model may generate: newline and printable ASCII. */
function isGeneratable(token: number): boolean {
  const byte = token - FIRST_BYTE_TOKEN
  return byte === 0x0a || (byte >= 0x20 && byte <= 0x7e)
}

function vocabulary(): { tokens: string[]; types: number[] } {
  const tokens: string[] = [...SPECIAL_TOKENS]
  const types: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control]
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
    types.push(TOKEN_TYPE.byte)
  }
  tokens.push(SPACE_PIECE)
  types.push(TOKEN_TYPE.normal)
  return { tokens, types }
}

/** The bytes of the tiny model for `seed`: the same seed gives the same bytes. */
export function tinyModelBytes(options: TinyModelOptions): Uint8Array {
  const { seed } = options
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`tiny model seed must be an unsigned 32-bit integer, got ${seed}`)
  }
  const E = TINY_MODEL.embeddingLength
  const F = TINY_MODEL.feedForwardLength
  const headDim = E / TINY_MODEL.headCount
  const kvDim = headDim * TINY_MODEL.headCountKv
  const V = TINY_VOCABULARY_SIZE
  const next = seededPrng(seed)
  const { tokens, types } = vocabulary()

  const metadata: GgufMetadataEntry[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.name', type: 'string', value: TINY_MODEL.name },
    { key: 'general.description', type: 'string', value: `random weights from seed ${seed}; its text is noise` },
    { key: 'general.file_type', type: 'u32', value: 0 },
    { key: 'general.alignment', type: 'u32', value: 32 },
    { key: 'llmesh.tiny.seed', type: 'u32', value: seed },
    { key: 'llama.vocab_size', type: 'u32', value: V },
    { key: 'llama.context_length', type: 'u32', value: TINY_MODEL.contextLength },
    { key: 'llama.embedding_length', type: 'u32', value: E },
    { key: 'llama.block_count', type: 'u32', value: TINY_MODEL.blockCount },
    { key: 'llama.feed_forward_length', type: 'u32', value: F },
    { key: 'llama.rope.dimension_count', type: 'u32', value: headDim },
    { key: 'llama.rope.freq_base', type: 'f32', value: TINY_MODEL.ropeFreqBase },
    { key: 'llama.attention.head_count', type: 'u32', value: TINY_MODEL.headCount },
    { key: 'llama.attention.head_count_kv', type: 'u32', value: TINY_MODEL.headCountKv },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: TINY_MODEL.rmsEpsilon },
    { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', values: tokens },
    { key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', values: tokens.map(() => 0) },
    { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', values: types },
    { key: 'tokenizer.ggml.unknown_token_id', type: 'u32', value: 0 },
    { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: 1 },
    { key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: 2 },
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: true },
    { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: false }
  ]
  if (options.chatTemplate != null) metadata.push({ key: 'tokenizer.chat_template', type: 'string', value: options.chatTemplate })

  // token embeddings: dimension 0 is the constant the output layer keys on
  const embedding = uniform(next, E * V, 1)
  for (let t = 0; t < V; t++) embedding[t * E] = 1
  const tensors: GgufTensor[] = [{ name: 'token_embd.weight', dims: [E, V], data: embedding }]

  for (let i = 0; i < TINY_MODEL.blockCount; i++) {
    const attnScale = Math.sqrt(3 / E)
    const attnOutput = uniform(next, E * E, attnScale)
    attnOutput.fill(0, 0, E) // row 0 writes residual dimension 0: keep it constant
    const ffnDown = uniform(next, F * E, Math.sqrt(3 / F))
    ffnDown.fill(0, 0, F)
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [E], data: filled(E, 1) },
      { name: `blk.${i}.attn_q.weight`, dims: [E, E], data: uniform(next, E * E, attnScale) },
      { name: `blk.${i}.attn_k.weight`, dims: [E, kvDim], data: uniform(next, E * kvDim, attnScale) },
      { name: `blk.${i}.attn_v.weight`, dims: [E, kvDim], data: uniform(next, E * kvDim, attnScale) },
      { name: `blk.${i}.attn_output.weight`, dims: [E, E], data: attnOutput },
      { name: `blk.${i}.ffn_norm.weight`, dims: [E], data: filled(E, 1) },
      { name: `blk.${i}.ffn_gate.weight`, dims: [E, F], data: uniform(next, E * F, attnScale) },
      { name: `blk.${i}.ffn_up.weight`, dims: [E, F], data: uniform(next, E * F, attnScale) },
      { name: `blk.${i}.ffn_down.weight`, dims: [F, E], data: ffnDown }
    )
  }

  const output = uniform(next, E * V, 0.5)
  for (let t = 0; t < V; t++) {
    if (isGeneratable(t)) output[t * E] = 0
    else output.fill(0, t * E, (t + 1) * E).fill(SUPPRESSED_LOGIT_WEIGHT, t * E, t * E + 1)
  }
  tensors.push({ name: 'output_norm.weight', dims: [E], data: filled(E, 1) }, { name: 'output.weight', dims: [E, V], data: output })
  return encodeGguf(metadata, tensors)
}

/** Writes the tiny model for `seed` to `path` (atomically: a temporary file renamed into place). */
export async function writeTinyModel(path: string, options: TinyModelOptions): Promise<{ path: string; bytes: number }> {
  const bytes = tinyModelBytes(options)
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, bytes)
  await rename(tmp, path)
  return { path, bytes: bytes.byteLength }
}
