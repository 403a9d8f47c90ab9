import { execFileSync } from 'node:child_process'

/** Process ids of model workers that are children of this (test) process. */
export function workerPids(): number[] {
  let out: string
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' })
  } catch {
    // ps exits 1 when it lists nothing
    return []
  }
  return out
    .split('\n')
    .filter((line) => line.includes('llama-worker-boot'))
    .map((line) => Number.parseInt(line.trim(), 10))
    .filter((pid) => Number.isInteger(pid))
}

/** SIGKILL to `pid` if it is still there. */
export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

/** Kills, by pid, every model worker this process still has (a test that failed half-way may leave one). */
export function killWorkers(): void {
  for (const pid of workerPids()) killPid(pid)
}

function find(bytes: Uint8Array, text: string, from = 0): number {
  const needle = new TextEncoder().encode(text)
  outer: for (let i = from; i <= bytes.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer
    return i
  }
  throw new Error(`${text} not found`)
}

/** A copy of a GGUF file with the u32 metadata value under `key` replaced. */
export function withU32Metadata(gguf: Uint8Array, key: string, value: number): Uint8Array {
  const out = gguf.slice()
  // the key is stored as its bytes, then a u32 value type (4 = u32), then the value
  let at = find(out, key)
  while (out[at + key.length] !== 4) at = find(out, key, at + 1)
  new DataView(out.buffer).setUint32(at + key.length + 4, value, true)
  return out
}

/** A copy of a GGUF file with one dimension of a tensor's info replaced. */
export function withTensorDim(gguf: Uint8Array, tensor: string, dim: number, value: bigint): Uint8Array {
  const out = gguf.slice()
  // tensor info: name bytes, u32 n_dims, then u64 dims
  const at = find(out, tensor) + tensor.length + 4 + 8 * dim
  new DataView(out.buffer).setBigUint64(at, value, true)
  return out
}
