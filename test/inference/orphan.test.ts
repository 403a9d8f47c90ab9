import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { alive, tempDir, waitFor } from '../helpers.ts'

test('a model worker does not outlive the process that started it, even one killed with SIGKILL', async (t) => {
  const dir = await tempDir(t)
  const host = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./orphan-host.ts', import.meta.url)), dir], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let workerPid: number | undefined
  t.after(() => {
    for (const pid of [host.pid, workerPid]) if (pid != null && alive(pid)) process.kill(pid, 'SIGKILL')
  })
  let out = ''
  host.stdout.on('data', (b: Buffer) => {
    out += b.toString()
  })
  workerPid = await waitFor('the worker pid', async () => (/^\d+\n/.test(out) ? Number.parseInt(out, 10) : undefined), 30_000, 50)
  assert.ok(alive(workerPid))
  const exited = once(host, 'exit')
  host.kill('SIGKILL')
  await exited
  await waitFor('the worker to exit', async () => (alive(workerPid as number) ? undefined : true), 5_000, 50)
})
