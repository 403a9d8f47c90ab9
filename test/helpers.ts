import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

const stoppers = new WeakMap<TestContext, Array<() => Promise<void>>>()

/**
 * Registers how to stop something the test started (a child process) so that it stops before
 * the test's temporary directories are removed (`t.after` hooks run in the order they were added).
 */
export function stopBeforeCleanup(t: TestContext, stop: () => Promise<void>): void {
  const list = stoppers.get(t) ?? []
  list.push(stop)
  stoppers.set(t, list)
}

async function stopAll(t: TestContext): Promise<void> {
  const list = stoppers.get(t) ?? []
  stoppers.delete(t)
  await Promise.all(list.map((stop) => stop()))
}

/** A fresh temporary directory, removed when the test ends (after what the test started has stopped). */
export async function tempDir(t: TestContext, prefix = 'llmesh-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.after(async () => {
    await stopAll(t)
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 })
  })
  return dir
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
  })
}

/** A base port B such that B..B+count-1 and B+offset..B+offset+count-1 are all free now. */
export async function freePortBase(count: number, offset = 1000): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // below Linux's ephemeral ports (32768 and up): an outgoing connection cannot take one of these
    // between the check and the bind
    const base = 20_000 + Math.floor(Math.random() * 10_000)
    let ok = true
    for (let i = 0; i < count && ok; i++) ok = (await portFree(base + i)) && (await portFree(base + offset + i))
    if (ok) return base
  }
  throw new Error('no free port range found in 50 attempts')
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      lastError = err
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError == null ? '' : ` (last error: ${(lastError as Error).message})`}`
  )
}

/** Whether a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
