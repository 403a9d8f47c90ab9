import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { type InferenceEngine, writeTinyModel } from '../../src/inference/index.ts'
import { ModelStore, modelStoreDir } from '../../src/models/index.ts'
import type { ConfigInput, InitResult, LlmeshNode } from '../../src/node/index.ts'
import { TINY_MODEL } from '../../src/params/index.ts'
import { tempDir } from '../helpers.ts'
import { initTestHome, startNodeOn } from '../node-fixture.ts'

/** A node home whose store holds the built-in tiny model (and `extraModels`), configured to serve them as a host. */
export async function meshHome(
  t: TestContext,
  config: ConfigInput & { roles: ConfigInput['roles'] },
  engine: 'echo' | 'llama' | InferenceEngine = 'echo',
  extraModels: string[] = []
): Promise<{ home: InitResult; cid: string; extraCids: string[] }> {
  const dir = await tempDir(t)
  const file = join(dir, 'tiny.gguf')
  await writeTinyModel(file, { seed: TINY_MODEL.seed })
  const home = await initTestHome(t, config)
  const store = new ModelStore({ dir: modelStoreDir(home.paths.home) })
  await store.start()
  const cid = (await store.add(file, { name: TINY_MODEL.name })).cid
  const extraCids: string[] = []
  for (const extra of extraModels) extraCids.push((await store.add(extra)).cid)
  await store.stop()
  home.config.host = {
    ...home.config.host,
    engine: typeof engine === 'string' ? engine : 'echo',
    models: [cid, ...extraCids],
    ...config.host
  }
  return { home, cid, extraCids }
}

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
  const { home, cid, extraCids } = await meshHome(t, config, engine, extraModels)
  const node = await startNodeOn(t, home, { engine: typeof engine === 'string' ? undefined : engine })
  return { node, cid, extraCids }
}
