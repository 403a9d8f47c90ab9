import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { DevnetNodeInfo } from '../src/cli/devnet.ts'
import { stopBeforeCleanup, waitFor } from './helpers.ts'

export const BIN = fileURLToPath(new URL('../bin/llmesh.js', import.meta.url))

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Starts `llmesh ...args` as a child process that the test kills (by PID) if it outlives it. */
export function spawnCli(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
  })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
  })
  const done = new Promise<CliResult>((resolve) => {
    child.on('exit', (code, signal) => {
      // let the pipes drain
      setImmediate(() => resolve({ code, signal, stdout, stderr }))
    })
  })
  // stopped gracefully (a devnet stops its nodes on SIGTERM; SIGKILL would orphan them), killed if it hangs
  const stop = async (): Promise<void> => {
    if (child.exitCode != null || child.signalCode != null) return
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.kill('SIGTERM')
    await done
    clearTimeout(timer)
  }
  stopBeforeCleanup(t, stop)
  t.after(stop)
  return { child, done }
}

/** Runs `llmesh ...args` to completion (killed after `timeoutMs`). */
export async function runCli(t: TestContext, args: string[], timeoutMs = 30_000, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const { child, done } = spawnCli(t, args, env)
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const result = await done
  clearTimeout(timer)
  return result
}

/** Starts `llmesh devnet ...args` in `dir` and waits for its devnet.json. */
export async function startDevnet(
  t: TestContext,
  dir: string,
  args: string[]
): Promise<{ devnet: ReturnType<typeof spawnCli>; nodes: DevnetNodeInfo[] }> {
  const devnet = spawnCli(t, ['devnet', '--dir', dir, '--quiet', ...args])

  const { nodes } = await waitFor(
    'devnet.json',
    async () => {
      if (devnet.child.exitCode != null) throw new Error(`devnet exited early: ${(await devnet.done).stderr}`)
      return JSON.parse(await readFile(join(dir, 'devnet.json'), 'utf8')) as { nodes: DevnetNodeInfo[] }
    },
    120_000,
    250
  )
  return { devnet, nodes }
}
