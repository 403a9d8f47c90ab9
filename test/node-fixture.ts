import { join } from 'node:path'
import type { TestContext } from 'node:test'
import pino from 'pino'
import { type ConfigInput, type InitResult, initHome, LlmeshNode, type LlmeshNodeInit } from '../src/node/index.ts'
import { stopBeforeCleanup, tempDir } from './helpers.ts'

/** A fresh node home for a test: loopback p2p on a random port, API port 0. */
export async function initTestHome(t: TestContext, config: ConfigInput = {}): Promise<InitResult> {
  const home = join(await tempDir(t), 'home')
  return initHome(home, {
    ...config,
    p2p: { listen: ['/ip4/127.0.0.1/tcp/0'], localNetwork: true, bootstrapTimeoutMs: 5_000, ...config.p2p },
    api: { port: 0 }
  })
}

/** Starts a node on a home from {@link initTestHome}; stopped when the test ends. */
export async function startNodeOn(
  t: TestContext,
  home: InitResult,
  init: Partial<Pick<LlmeshNodeInit, 'engine'>> = {}
): Promise<LlmeshNode> {
  const node = new LlmeshNode({ ...home, ...init, log: pino({ level: process.env.LLMESH_TEST_LOG ?? 'silent' }) })
  await node.start()
  // stopped before the test's directories are removed (its timers may still write there)
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= node.stop()
    return stopped
  }
  stopBeforeCleanup(t, stop)
  t.after(stop)
  return node
}

/** An in-process node on a random loopback port, stopped when the test ends. */
export async function startTestNode(t: TestContext, config: ConfigInput = {}): Promise<LlmeshNode> {
  return startNodeOn(t, await initTestHome(t, config))
}

/** The dialable address of `node` for another node's bootstrap list. */
export function addressOf(node: LlmeshNode): string {
  const addr = node.addresses().find((a) => a.includes('/127.0.0.1/'))
  if (addr == null) throw new Error('node has no loopback address')
  return addr
}

export function peerIdOf(node: LlmeshNode): string {
  return node.libp2p.peerId.toString()
}
