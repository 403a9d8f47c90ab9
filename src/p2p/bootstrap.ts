import { KEEP_ALIVE } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { LlmeshError } from '../errors/index.ts'
import type { MeshLibp2p } from './create-libp2p.ts'

export class BootstrapUnreachableError extends LlmeshError<'BOOTSTRAP_UNREACHABLE'> {
  readonly failures: Array<{ addr: string; error: string }>
  constructor(message: string, hint: string, failures: Array<{ addr: string; error: string }>) {
    super('BOOTSTRAP_UNREACHABLE', message, { hint })
    this.failures = failures
  }
}

export interface BootstrapOptions {
  timeoutMs: number
  /** Where the list came from, for the error message (e.g. "p2p.bootstrap in /home/config.json"). */
  setting: string
  log: Logger
  signal?: AbortSignal
  retryIntervalMs?: number
}

/**
 * Connects to the configured bootstrap peers, retrying each until `timeoutMs`. Bootstrap peers
 * are tagged keep-alive so libp2p redials them if they drop. Resolves with the first peer
 * reached (the rest keep being tried in the background, and those never reached are logged);
 * throws BootstrapUnreachableError if none answers in time.
 */
export async function connectBootstrapPeers(libp2p: MeshLibp2p, addrs: string[], opts: BootstrapOptions): Promise<string | undefined> {
  if (addrs.length === 0) return undefined
  const targets = addrs.map((addr) => {
    const ma = multiaddr(addr)
    const id = ma.getComponents().find((c) => c.name === 'p2p')?.value
    if (id == null) throw new Error(`bootstrap address ${addr} lacks /p2p/`) // the config schema checks this
    return { addr, ma, peerId: peerIdFromString(id) }
  })
  for (const t of targets) {
    await libp2p.peerStore.merge(t.peerId, { multiaddrs: [t.ma], tags: { [KEEP_ALIVE]: { value: 1 } } })
  }
  const deadline = Date.now() + opts.timeoutMs
  const retryMs = opts.retryIntervalMs ?? 1_000
  // resolve/reject of the returned promise; Promise.withResolvers is not in Node 20's typings
  let first!: { resolve: (addr: string | undefined) => void; reject: (err: Error) => void }
  const firstReached = new Promise<string | undefined>((resolve, reject) => {
    first = { resolve, reject }
  })
  const errors = new Map<string, string>()

  const tryUntilReached = async (t: (typeof targets)[number]): Promise<void> => {
    while (opts.signal?.aborted !== true) {
      try {
        const remaining = Math.max(1, Math.min(5_000, deadline - Date.now()))
        const signals = [AbortSignal.timeout(remaining), ...(opts.signal == null ? [] : [opts.signal])]
        await libp2p.dial(t.ma, { signal: AbortSignal.any(signals) })
        errors.delete(t.addr)
        first.resolve(t.addr)
        return
      } catch (err) {
        errors.set(t.addr, (err as Error).message)
      }
      if (Date.now() + retryMs >= deadline) return
      await new Promise((resolve) => setTimeout(resolve, retryMs))
    }
  }

  void Promise.all(targets.map(tryUntilReached)).then(() => {
    if (opts.signal?.aborted === true) return first.resolve(undefined) // stopping: not an error
    for (const [addr, error] of errors) opts.log.warn({ addr, error }, 'bootstrap peer unreachable')
    const failures = [...errors].map(([addr, error]) => ({ addr, error }))
    first.reject(
      new BootstrapUnreachableError(
        `could not reach any of the ${addrs.length} bootstrap peer(s) in ${opts.setting} within ${opts.timeoutMs} ms (first: ${failures[0]?.addr}: ${failures[0]?.error})`,
        'check that those nodes are running and reachable, fix the addresses, or empty the list to start a new network',
        failures
      )
    )
  })
  return firstReached
}
