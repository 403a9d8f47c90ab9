import { LlmeshError } from '../errors/index.ts'
import type { StoredModel } from '../models/index.ts'

/**
 * `llmesh model ...`: the node's content-addressed model store. `add`, `ls`, `rm` and `export`
 * work on the home's store directly (`<home>/models`); `get` asks the running node (its API) to
 * fetch a model from the peers that provide it.
 *
 * Beside a running node: `add` is safe (the store's lock file makes the node and the CLI change
 * the store one at a time, and the node picks up the new model from `index.json`); `ls` and
 * `export` only read; `rm` refuses, because removal deletes blocks the node may be serving to
 * peers or loading for inference.
 */
export class ModelCommandError extends LlmeshError<'NODE_RUNNING' | 'MODEL_GET_FAILED' | 'MODEL_GET_INTERRUPTED'> {}

async function withStore<T>(home: string, fn: (store: import('../models/index.ts').ModelStore) => Promise<T>): Promise<T> {
  const { ModelStore, modelStoreDir } = await import('../models/index.ts')
  const store = new ModelStore({
    dir: modelStoreDir(home),
    onLockWait: (holder) =>
      process.stderr.write(`waiting for the model store: ${holder == null ? 'another process' : `process ${holder}`} is changing it\n`)
  })
  await store.start()
  try {
    return await fn(store)
  } finally {
    await store.stop()
  }
}

/** The pid of the node running on `home`, if one is. */
async function runningNode(home: string): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises')
  const { homePaths, processAlive } = await import('../node/index.ts')
  const owner = Number.parseInt(await readFile(homePaths(home).pid, 'utf8').catch(() => ''), 10)
  return Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner) ? owner : undefined
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
  const pid = await runningNode(home)
  if (pid != null) {
    throw new ModelCommandError('NODE_RUNNING', `a node (pid ${pid}) is running on ${home}; a model cannot be removed under it`, {
      hint: 'removal deletes blocks the node may be serving or loading: stop the node, run `llmesh model rm`, then start it again'
    })
  }
  const r = await withStore(home, (store) => store.remove(cid))
  out.write(`removed ${r.cid}: ${r.blocksDeleted} blocks deleted, ${r.blocksKept} kept (shared with other models)\n`)
}

export async function runModelExport(home: string, cid: string, file: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const r = await withStore(home, (store) => store.export(cid, file))
  out.write(`exported ${cid} to ${r.path} (${r.size} bytes, sha256 ${r.sha256})\n`)
}

type FetchEvent =
  | { event: 'progress'; phase: string; providers: number; blocks: number; bytes: number; totalBytes?: number }
  | { event: 'done'; model: StoredModel }
  | { event: 'error'; message: string; code: string }

/** Longest line of the fetch stream read (a progress line is ~200 bytes, the final model line under 1 KiB). */
const MAX_EVENT_LINE_BYTES = 64 * 1024

const MiB = (n: number): string => (n / 1024 / 1024).toFixed(1)

/** One status line for a terminal: a bar once the size is known. */
function progressLine(e: Extract<FetchEvent, { event: 'progress' }>): string {
  if (e.phase === 'finding-providers') return 'looking up providers on the DHT…'
  if (e.phase === 'connecting') return `connecting to ${e.providers} provider${e.providers === 1 ? '' : 's'}…`
  if (e.totalBytes == null || e.totalBytes === 0)
    return `fetching from ${e.providers} peer${e.providers === 1 ? '' : 's'}: ${e.blocks} blocks`
  const fraction = Math.min(1, e.bytes / e.totalBytes)
  const width = 30
  const filled = Math.round(fraction * width)
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(fraction * 100)
    .toString()
    .padStart(3)}%  ${MiB(e.bytes)}/${MiB(e.totalBytes)} MiB  ${e.blocks} blocks`
}

/**
 * `llmesh model get CID`: asks the node at `api` to fetch the model from the peers providing it
 * (`POST /mesh/models/fetch`), shows progress on a terminal, prints the model. Interrupting the
 * command (the connection closes) makes the node abandon the fetch.
 */
export async function runModelGet(
  api: string,
  cid: string,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WriteStream | NodeJS.WritableStream = process.stderr
): Promise<void> {
  const { ApiUnreachableError, ApiRequestError } = await import('./api-client.ts')
  const tty = (err as NodeJS.WriteStream).isTTY === true
  let res: Response
  try {
    res = await fetch(new URL('/mesh/models/fetch', api), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cid })
    })
  } catch (e) {
    throw new ApiUnreachableError('API_UNREACHABLE', `no node answered at ${api} (${(e as Error).message})`, {
      hint: 'is the node running? pass its API with --api http://127.0.0.1:PORT or its --home',
      cause: e
    })
  }
  if (!res.ok || res.body == null) {
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string; code?: string } }
    throw new ApiRequestError(
      'API_ERROR',
      `/mesh/models/fetch: ${body.error?.message ?? `HTTP ${res.status}`}${body.error?.code == null ? '' : ` (${body.error.code})`}`
    )
  }
  let shown = false
  const clear = (): void => {
    if (shown) err.write('\r\x1b[2K')
    shown = false
  }
  let buffered = ''
  const decoder = new TextDecoder()
  try {
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk, { stream: true })
      if (buffered.length > MAX_EVENT_LINE_BYTES && !buffered.includes('\n')) {
        throw new ModelCommandError('MODEL_GET_FAILED', 'the node sent a line longer than allowed', { hint: 'is --api a llmesh node?' })
      }
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl).trim()
        buffered = buffered.slice(nl + 1)
        if (line === '') continue
        let e: FetchEvent
        try {
          e = JSON.parse(line) as FetchEvent
        } catch {
          throw new ModelCommandError('MODEL_GET_FAILED', `the node sent a line that is not JSON: ${line.slice(0, 80)}`, {
            hint: 'is --api a llmesh node?'
          })
        }
        if (e.event === 'progress') {
          if (tty) {
            err.write(`\r\x1b[2K${progressLine(e)}`)
            shown = true
          }
        } else if (e.event === 'done') {
          clear()
          out.write(`${e.model.cid}\n`)
          out.write(`fetched ${describe(e.model)}\n`)
          return
        } else if (e.event === 'error') {
          clear()
          throw new ModelCommandError('MODEL_GET_FAILED', e.message)
        }
      }
    }
  } finally {
    clear()
  }
  throw new ModelCommandError('MODEL_GET_INTERRUPTED', `the node at ${api} closed the fetch of ${cid} before it finished`, {
    hint: 'check the node log, then run the command again (blocks already fetched are kept only when the model completes)'
  })
}
