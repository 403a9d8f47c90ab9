// A process that loads the tiny model, prints its worker's pid, and waits to be killed: the
// orphan test kills it and checks that the worker does not outlive it.
import { join } from 'node:path'
import pino from 'pino'
import { LlamaEngine, writeTinyModel } from '../../src/inference/index.ts'

const dir = process.argv[2] as string
const path = join(dir, 'tiny.gguf')
await writeTinyModel(path, { seed: 1 })
const engine = new LlamaEngine({ log: pino({ level: 'silent' }) })
await engine.load({ id: 'tiny', path })
// a generation in flight when the host dies
const generation = engine.generate({ model: 'tiny', prompt: 'x', maxTokens: 1000 })
process.stdout.write(`${engine.workerPid('tiny')}\n`)
for await (const _ of generation) {
  // keep reading until killed
}
setInterval(() => {}, 1000)
