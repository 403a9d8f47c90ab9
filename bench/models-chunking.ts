// Chunker figures for docs/models.md, measured in one run (not a test):
//   node --import tsx --import ./src/polyfill.ts bench/models-chunking.ts [MiB=32] [runs=3]
// (a) import speed of one file: fixed-size 256 KiB chunks (the baseline: the importer's default),
//     fixed-size 1 MiB, rabin with several size triples (ours is MODEL_IMPORT's), hashing into
//     memory, then ours through ModelStore.add onto disk;
// (b) blocks a v2 shares with v1 when 200 bytes are inserted right after the GGUF header.
// The file is the tiny model followed by pseudo-random padding (incompressible, like weights).

import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ImporterOptions, importer } from 'ipfs-unixfs-importer'
import { fixedSize, rabin } from 'ipfs-unixfs-importer/chunker'
import type { CID } from 'multiformats/cid'
import { MODEL_CHUNKER, ModelStore, modelImporterOptions } from '../src/models/index.ts'
import { paddedModel, pseudoRandomBytes, withInsertion, writeTemp } from '../test/models/fixtures.ts'

const MiB = 1024 * 1024
const mib = Number(process.argv[2] ?? 32)
const runs = Number(process.argv[3] ?? 3)
const v1 = paddedModel(mib * MiB, 1)
const v2 = withInsertion(v1, 24, pseudoRandomBytes(200, 2))

console.log(`chunking-bench  ${new Date().toISOString()}  node ${process.version}  ${cpus().length} x ${cpus()[0]?.model}  file ${mib} MiB`)

async function importToMemory(bytes: Uint8Array, options: () => ImporterOptions): Promise<{ ms: number; blocks: Map<string, number> }> {
  const blocks = new Map<string, number>()
  const sink = {
    put: async (cid: CID, block: Uint8Array) => {
      blocks.set(cid.toString(), block.byteLength)
      return cid
    }
  }
  async function* content() {
    for (let i = 0; i < bytes.byteLength; i += MiB) yield bytes.subarray(i, i + MiB)
  }
  const started = performance.now()
  for await (const _ of importer([{ content: content() }], sink, options())) {
    // the root comes last
  }
  return { ms: performance.now() - started, blocks }
}

const rabinOptions = (min: number, avg: number, max: number) => () => ({
  ...modelImporterOptions(),
  chunker: rabin({ minChunkSize: min, avgChunkSize: avg, maxChunkSize: max, window: 16 })
})
const configs: Array<[string, () => ImporterOptions]> = [
  ['fixed 256 KiB (baseline)', () => ({ ...modelImporterOptions(), chunker: fixedSize({ chunkSize: 256 * 1024 }) })],
  ['fixed 1 MiB', () => ({ ...modelImporterOptions(), chunker: fixedSize({ chunkSize: MiB }) })],
  ['rabin-87381-262144-393216', rabinOptions(87_381, 262_144, 393_216)],
  ['rabin-131072-262144-524288', rabinOptions(131_072, 262_144, 524_288)],
  [`${MODEL_CHUNKER} (ours)`, modelImporterOptions],
  ['rabin-524288-1048576-2097152', rabinOptions(524_288, MiB, 2 * MiB)]
]

let baselineMs = 0
console.log('| chunker | import ms (best of runs) | MiB/s | x baseline time | blocks v1 | v2 blocks new | v2 shared | new KiB |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |')
for (const [name, options] of configs) {
  let best = Number.POSITIVE_INFINITY
  let a = await importToMemory(v1, options)
  for (let i = 0; i < runs; i++) {
    a = await importToMemory(v1, options)
    best = Math.min(best, a.ms)
  }
  if (baselineMs === 0) baselineMs = best
  const b = await importToMemory(v2, options)
  let shared = 0
  let newBytes = 0
  for (const [cid, size] of b.blocks) {
    if (a.blocks.has(cid)) shared++
    else newBytes += size
  }
  console.log(
    `| ${name} | ${best.toFixed(0)} | ${(mib / (best / 1000)).toFixed(1)} | ${(best / baselineMs).toFixed(1)} | ${a.blocks.size} | ${b.blocks.size - shared} | ${((100 * shared) / b.blocks.size).toFixed(1)}% | ${(newBytes / 1024).toFixed(0)} |`
  )
}

// ours end to end: file on disk -> ModelStore.add (rabin, sha256 of the file, blocks written to disk)
const dir = await mkdtemp(join(tmpdir(), 'llmesh-bench-'))
try {
  const v1File = await writeTemp(dir, 'v1.gguf', v1)
  const v2File = await writeTemp(dir, 'v2.gguf', v2)
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < runs; i++) {
    const store = new ModelStore({ dir: join(dir, `store-${i}`) })
    await store.start()
    const started = performance.now()
    await store.add(v1File)
    best = Math.min(best, performance.now() - started)
    if (i === runs - 1) {
      const started2 = performance.now()
      const m2 = await store.add(v2File)
      console.log(`ModelStore.add v2 into a store holding v1: ${(performance.now() - started2).toFixed(0)} ms, ${m2.blocks} blocks`)
      const started3 = performance.now()
      await store.export(m2.cid, join(dir, 'out.gguf'))
      console.log(`ModelStore.export (every block and the file hash checked): ${(performance.now() - started3).toFixed(0)} ms`)
    }
    await store.stop()
  }
  console.log(`ModelStore.add v1 onto disk: ${best.toFixed(0)} ms (best of ${runs}), ${(mib / (best / 1000)).toFixed(1)} MiB/s`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
