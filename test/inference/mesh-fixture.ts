import { join } from 'node:path'
import type { TestContext } from 'node:test'
import pino from 'pino'
import { type InferenceEngine, writeTinyModel } from '../../src/inference/index.ts'
import { ModelStore, modelStoreDir } from '../../src/models/index.ts'
import { type ConfigInput, initHome, LlmeshNode } from '../../src/node/index.ts'
import { TINY_MODEL } from '../../src/params/index.ts'
import { tempDir } from '../helpers.ts'

/**
 * An in-process node whose store holds the built-in tiny model; with the host role it serves it
 * (`engine`: echo by default, so tests measure the mesh; llama runs the real model).
 */
export async function startMeshNode(
  t: TestContext,
  config: ConfigInput & { roles: ConfigInput['roles'] },
  engine: 'echo' | 'llama' | InferenceEngine = 'echo',
  /** More files to add to the store and serve after the tiny model (a broken one, say). */
  extraModels: string[] = []
): Promise<{ node: LlmeshNode; cid: string; extraCids: string[] }> {
  const dir = await tempDir(t)
  const home = join(dir, 'home')
  const file = join(dir, 'tiny.gguf')
  await writeTinyModel(file, { seed: TINY_MODEL.seed })
  const {
    paths,
    config: parsed,
    privateKey
  } = await initHome(home, {
    ...config,
    p2p: { listen: ['/ip4/127.0.0.1/tcp/0'], localNetwork: true, bootstrapTimeoutMs: 5_000, ...config.p2p },
    api: { port: 0 }
  })
  const store = new ModelStore({ dir: modelStoreDir(home) })
  await store.start()
  const cid = (await store.add(file, { name: TINY_MODEL.name })).cid
  const extraCids: string[] = []
  for (const extra of extraModels) extraCids.push((await store.add(extra)).cid)
  await store.stop()
  parsed.host = { ...parsed.host, engine: typeof engine === 'string' ? engine : 'echo', models: [cid, ...extraCids], ...config.host }
  const node = new LlmeshNode({
    paths,
    config: parsed,
    privateKey,
    log: pino({ level: process.env.LLMESH_TEST_LOG ?? 'silent' }),
    engine: typeof engine === 'string' ? undefined : engine
  })
  await node.start()
  t.after(() => node.stop())
  return { node, cid, extraCids }
}
