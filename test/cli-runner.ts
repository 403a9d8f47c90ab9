import { type ChildProcess, spawn } from 'node:child_process'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'

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
  t.after(async () => {
    if (child.exitCode == null && child.signalCode == null) {
      child.kill('SIGKILL')
      await done
    }
  })
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
