import { randomBytes } from 'node:crypto'
import { open, readFile, stat, unlink } from 'node:fs/promises'
import { isSystemError } from '../errors/index.ts'
import { ModelStoreBusyError } from './errors.ts'

export const STORE_LOCK_DEFAULTS = {
  /** Longest wait for another process to finish its change to the store (a fetch or an import can take minutes). */
  waitMs: 10 * 60_000,
  /** How often a waiting process looks at the lock again. */
  pollMs: 100,
  /** A lock file without a readable owner (its writer died between creating and writing it) is taken over after this long. */
  unreadableStaleMs: 10_000
} as const

export interface StoreLockOptions {
  waitMs?: number
  signal?: AbortSignal
  /** Called once when the lock is held by another process (or another store in this one) and the caller starts waiting. */
  onWait?: (holder: number | undefined) => void
}

/** Whether a process with this pid exists (one we may not signal still counts). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return isSystemError(err, 'EPERM')
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted()
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Takes the model store's lock file (`<store>/store.lock`) so that one process at a time changes
 * the store: the running node (a fetch) and `llmesh model add` on the same home both write blocks
 * and rewrite `index.json`. The file holds the owner's pid and a random token; a lock whose owner
 * died is taken over. Waits (bounded) while a live process holds it. Returns the release function,
 * which removes the file only if it is still ours.
 *
 * Known limit: two processes taking over the same dead owner's lock at the same instant could both
 * believe they hold it (the file system offers no atomic compare-and-replace); this needs a crash
 * and two simultaneous writers.
 */
export async function lockStoreDir(path: string, options: StoreLockOptions = {}): Promise<() => Promise<void>> {
  const token = `${process.pid} ${randomBytes(8).toString('hex')}\n`
  const deadline = Date.now() + (options.waitMs ?? STORE_LOCK_DEFAULTS.waitMs)
  let told = false
  for (;;) {
    options.signal?.throwIfAborted()
    try {
      const fh = await open(path, 'wx', 0o644)
      try {
        await fh.writeFile(token)
      } finally {
        await fh.close()
      }
      return async () => {
        const now = await readFile(path, 'utf8').catch(() => '')
        if (now === token) await unlink(path).catch(() => {})
      }
    } catch (err) {
      if (!isSystemError(err, 'EEXIST')) throw err
    }
    const content = await readFile(path, 'utf8').catch(() => undefined)
    if (content === undefined) continue // released meanwhile
    const owner = Number.parseInt(content, 10)
    const readable = Number.isInteger(owner) && owner > 0
    if (readable ? !processAlive(owner) : await olderThan(path, STORE_LOCK_DEFAULTS.unreadableStaleMs)) {
      await unlink(path).catch(() => {})
      continue
    }
    if (Date.now() >= deadline) {
      throw new ModelStoreBusyError(path, readable ? owner : undefined)
    }
    if (!told) {
      told = true
      options.onWait?.(readable ? owner : undefined)
    }
    await sleep(STORE_LOCK_DEFAULTS.pollMs, options.signal)
  }
}

async function olderThan(path: string, ms: number): Promise<boolean> {
  const st = await stat(path).catch(() => undefined)
  return st != null && Date.now() - st.mtimeMs > ms
}
