import type { StoredModel } from '../models/index.ts'

/**
 * `llmesh model ...`: the node's content-addressed model store, used directly on its home
 * (`<home>/models`). Fetching from peers (`model get`) needs a running node and comes with the
 * host role.
 */
async function withStore<T>(home: string, fn: (store: import('../models/index.ts').ModelStore) => Promise<T>): Promise<T> {
  const { ModelStore, modelStoreDir } = await import('../models/index.ts')
  const store = new ModelStore({ dir: modelStoreDir(home) })
  await store.start()
  try {
    return await fn(store)
  } finally {
    await store.stop()
  }
}

function describe(m: StoredModel): string {
  return `${m.cid}  ${m.name}  ${(m.size / 1024 / 1024).toFixed(1)} MiB  ${m.blocks} blocks  sha256 ${m.sha256.slice(0, 16)}…`
}

export async function runModelAdd(
  home: string,
  file: string,
  name: string | undefined,
  out: NodeJS.WritableStream = process.stdout
): Promise<void> {
  const progress = process.stderr.isTTY === true
  const model = await withStore(home, (store) =>
    store.add(file, {
      name,
      onProgress: progress
        ? (p) => process.stderr.write(`\rimporting ${Math.floor((100 * p.bytesRead) / Math.max(1, p.totalBytes))}%`)
        : undefined
    })
  )
  if (progress) process.stderr.write('\n')
  out.write(`${model.cid}\n`)
  out.write(`added ${describe(model)}\n`)
}

export async function runModelList(home: string, json: boolean, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const models = await withStore(home, async (store) => store.list())
  if (json) out.write(`${JSON.stringify(models, null, 2)}\n`)
  else if (models.length === 0) out.write('no models; add one with: llmesh model add FILE.gguf\n')
  else for (const m of models) out.write(`${describe(m)}\n`)
}

export async function runModelRemove(home: string, cid: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const r = await withStore(home, (store) => store.remove(cid))
  out.write(`removed ${r.cid}: ${r.blocksDeleted} blocks deleted, ${r.blocksKept} kept (shared with other models)\n`)
}

export async function runModelExport(home: string, cid: string, file: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const r = await withStore(home, (store) => store.export(cid, file))
  out.write(`exported ${cid} to ${r.path} (${r.size} bytes, sha256 ${r.sha256})\n`)
}
