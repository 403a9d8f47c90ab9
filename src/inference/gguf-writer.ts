/**
 * A GGUF v3 writer: enough of the format to write a model llama.cpp loads (metadata of every
 * value type, F32 tensors). Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 */

export const GGUF_MAGIC = 'GGUF'
export const GGUF_VERSION = 3
/** Tensor data starts, and every tensor sits, at a multiple of this (the `general.alignment` default). */
export const GGUF_ALIGNMENT = 32

const VALUE_TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12
} as const

export type GgufScalarType = Exclude<keyof typeof VALUE_TYPE, 'array'>
export type GgufScalar = number | bigint | boolean | string

export type GgufMetadataEntry =
  | { key: string; type: GgufScalarType; value: GgufScalar }
  | { key: string; type: 'array'; itemType: GgufScalarType; values: readonly GgufScalar[] }

export interface GgufTensor {
  name: string
  /** Dimensions innermost first, as GGUF stores them (`[columns, rows]` for a matrix). */
  dims: readonly number[]
  data: Float32Array
}

const GGML_TYPE_F32 = 0

/** Little-endian bytes appended to a list of chunks; concatenated once at the end. */
class ByteSink {
  private readonly chunks: Uint8Array[] = []
  length = 0

  bytes(b: Uint8Array): void {
    this.chunks.push(b)
    this.length += b.byteLength
  }

  scalar(type: GgufScalarType, value: GgufScalar): void {
    if (type === 'string') {
      const utf8 = new TextEncoder().encode(String(value))
      this.scalar('u64', utf8.byteLength)
      this.bytes(utf8)
      return
    }
    const size = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 }[type]
    const buf = new Uint8Array(size)
    const view = new DataView(buf.buffer)
    switch (type) {
      case 'u8':
        view.setUint8(0, Number(value))
        break
      case 'i8':
        view.setInt8(0, Number(value))
        break
      case 'bool':
        view.setUint8(0, value === true ? 1 : 0)
        break
      case 'u16':
        view.setUint16(0, Number(value), true)
        break
      case 'i16':
        view.setInt16(0, Number(value), true)
        break
      case 'u32':
        view.setUint32(0, Number(value), true)
        break
      case 'i32':
        view.setInt32(0, Number(value), true)
        break
      case 'f32':
        view.setFloat32(0, Number(value), true)
        break
      case 'u64':
        view.setBigUint64(0, BigInt(value), true)
        break
      case 'i64':
        view.setBigInt64(0, BigInt(value), true)
        break
      case 'f64':
        view.setFloat64(0, Number(value), true)
        break
    }
    this.bytes(buf)
  }

  concat(): Uint8Array {
    const out = new Uint8Array(this.length)
    let at = 0
    for (const chunk of this.chunks) {
      out.set(chunk, at)
      at += chunk.byteLength
    }
    return out
  }
}

function alignUp(n: number): number {
  return Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT
}

/** The bytes of a GGUF v3 file holding `metadata` and F32 `tensors`, in the order given. */
export function encodeGguf(metadata: readonly GgufMetadataEntry[], tensors: readonly GgufTensor[]): Uint8Array {
  const head = new ByteSink()
  head.bytes(new TextEncoder().encode(GGUF_MAGIC))
  head.scalar('u32', GGUF_VERSION)
  head.scalar('u64', tensors.length)
  head.scalar('u64', metadata.length)
  for (const entry of metadata) {
    head.scalar('string', entry.key)
    head.scalar('u32', VALUE_TYPE[entry.type])
    if (entry.type === 'array') {
      head.scalar('u32', VALUE_TYPE[entry.itemType])
      head.scalar('u64', entry.values.length)
      for (const v of entry.values) head.scalar(entry.itemType, v)
    } else {
      head.scalar(entry.type, entry.value)
    }
  }
  let offset = 0
  for (const tensor of tensors) {
    const elements = tensor.dims.reduce((a, b) => a * b, 1)
    if (elements !== tensor.data.length) {
      throw new RangeError(`tensor ${tensor.name}: dims ${tensor.dims.join('x')} hold ${elements} values, data has ${tensor.data.length}`)
    }
    head.scalar('string', tensor.name)
    head.scalar('u32', tensor.dims.length)
    for (const d of tensor.dims) head.scalar('u64', d)
    head.scalar('u32', GGML_TYPE_F32)
    head.scalar('u64', offset)
    offset = alignUp(offset + tensor.data.byteLength)
  }
  const dataStart = alignUp(head.length)
  const out = new Uint8Array(dataStart + offset)
  out.set(head.concat(), 0)
  offset = 0
  for (const tensor of tensors) {
    // copy through a DataView so the file is little-endian whatever the host's byte order
    const view = new DataView(out.buffer, dataStart + offset, tensor.data.byteLength)
    for (let i = 0; i < tensor.data.length; i++) view.setFloat32(i * 4, tensor.data[i] as number, true)
    offset = alignUp(offset + tensor.data.byteLength)
  }
  return out
}
