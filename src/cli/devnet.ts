import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { prettyFactory } from 'pino-pretty'
import { LlmeshError } from '../errors/index.ts'
import { homePaths, initHome, type NodeConfig, type NodeStatus, processAlive, saveConfig } from '../node/index.ts'
import { type Role, TINY_MODEL } from '../params/index.ts'

export class DevnetError extends LlmeshError<'DEVNET_DIR' | 'DEVNET_PORT' | 'DEVNET_START' | 'DEVNET_OPTION'> {}

export interface DevnetOptions {
  nodes: number
  dir: string
  /** Node i's HTTP API listens on basePort + i. */
  basePort: number
  /** Node i's libp2p TCP listens on p2pBasePort + i. */
  p2pBasePort: number
  /** Roles of node 0 and of the others. */
  edgeRoles: Role[]
  otherRoles: Role[]
  readyTimeoutMs: number
  /** Target block interval of the devnet chain. */
  blockTimeMs: number
  /** Print every node's log lines (prettified) as well as writing them to node-i/node.log. */
  showLogs: boolean
  /** Engine of the host nodes: llama.cpp on the built-in tiny model, or the instant echo engine. */
  engine: 'llama' | 'echo'
}

export interface DevnetNodeInfo {
  index: number
  peerId: string
  home: string
  apiUrl: string
  pid: number
  multiaddrs: string[]
}

/** Every devnet account starts with this balance, and every node stakes this as a validator (and hosts as hosts). */
const DEVNET_BALANCE = 1_000_000_000_000n
const DEVNET_STAKE = 10_000_000n
const DEVNET_VOTING_BLOCKS = 10
/** Every edge's escrow, to pay hosts for requests (on top of its balance). */
const DEVNET_ESCROW = 100_000_000_000n

const BIN = fileURLToPath(new URL('../../bin/llmesh.js', import.meta.url))
const MARKER = 'devnet.json'
/** Lines of a node's output kept to explain an exit during start-up. */
const START_TAIL_LINES = 4

/**
 * `llmesh devnet`: a fresh local network of N nodes, each its own OS process
 * (`llmesh start --home DIR/node-i`). Resolves when SIGINT/SIGTERM has stopped every node.
 */
export async function runDevnet(opts: DevnetOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const print = (line: string): void => void out.write(`${line}\n`)
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 64) {
    throw new DevnetError('DEVNET_OPTION', `--nodes ${opts.nodes} is out of range`, { hint: 'use 1 to 64 nodes' })
  }
  for (const [flag, base] of [
    ['--base-port', opts.basePort],
    ['--p2p-base-port', opts.p2pBasePort]
  ] as const) {
    if (!Number.isInteger(base) || base < 1024 || base + opts.nodes > 65_535) {
      throw new DevnetError('DEVNET_OPTION', `${flag} ${base} is out of range`, { hint: `use 1024 to ${65_535 - opts.nodes}` })
    }
  }
  const dir = resolve(opts.dir)
  await freshDir(dir)
  await checkPortsFree(opts)

  // 1. a home per node, then the bootstrap lists (which need every node's peer id)
  const homes: Array<{ home: string; config: NodeConfig; peerId: string }> = []
  for (let i = 0; i < opts.nodes; i++) {
    const home = join(dir, `node-${i}`)
    const { config, privateKey } = await initHome(home, {
      roles: i === 0 ? opts.edgeRoles : opts.otherRoles,
      p2p: { listen: [`/ip4/127.0.0.1/tcp/${opts.p2pBasePort + i}`], localNetwork: true },
      api: { host: '127.0.0.1', port: opts.basePort + i },
      log: { level: 'info', format: 'json' }
    })
    homes.push({ home, config, peerId: peerIdFromPrivateKey(privateKey).toString() })
  }
  // every host serves the built-in tiny model (random weights: its text is noise)
  const hostIndexes = homes.flatMap((h, i) => (h.config.roles.includes('host') ? [i] : []))
  let tinyCid: string | null = null
  if (hostIndexes.length > 0) {
    const { writeTinyModel } = await import('../inference/index.ts')
    const { ModelStore, modelStoreDir } = await import('../models/index.ts')
    const file = join(dir, 'tiny-model.gguf')
    await writeTinyModel(file, { seed: TINY_MODEL.seed })
    for (const i of hostIndexes) {
      const h = homes[i]
      if (h == null) continue
      const store = new ModelStore({ dir: modelStoreDir(h.home) })
      await store.start()
      try {
        tinyCid = (await store.add(file, { name: TINY_MODEL.name })).cid
      } finally {
        await store.stop()
      }
      h.config = { ...h.config, host: { ...h.config.host, engine: opts.engine, models: [tinyCid] } }
    }
  }
  // one chain for the whole devnet: every node a validator with equal stake, a funded account and
  // an escrow to pay hosts from (every node is an edge); the tiny model registered
  const { tinyModelParameters } = await import('../inference/index.ts')
  const genesisPath = join(dir, 'genesis.json')
  await writeFile(
    genesisPath,
    `${JSON.stringify(
      {
        chainId: 'llmesh-devnet',
        genesisTime: Date.now(),
        // a devnet votes in 10 blocks, so a governance change can be tried in seconds
        params: { blockTimeMs: opts.blockTimeMs, govVotingBlocks: DEVNET_VOTING_BLOCKS },
        accounts: homes.map((h) => ({ address: h.peerId, balance: DEVNET_BALANCE.toString() })),
        validators: homes.map((h) => ({ address: h.peerId, stake: DEVNET_STAKE.toString() })),
        hosts: hostIndexes.map((i) => ({ address: homes[i]?.peerId ?? '', stake: DEVNET_STAKE.toString() })),
        models: tinyCid == null ? [] : [{ name: TINY_MODEL.registryName, cid: tinyCid, parameters: tinyModelParameters().toString() }],
        escrows: homes.filter((h) => h.config.roles.includes('edge')).map((h) => ({ payer: h.peerId, amount: DEVNET_ESCROW.toString() }))
      },
      null,
      2
    )}\n`
  )
  const addrOf = (i: number): string => `/ip4/127.0.0.1/tcp/${opts.p2pBasePort + i}/p2p/${homes[i]?.peerId}`
  for (const [i, h] of homes.entries()) {
    // nodes 0 and 1 are everyone's bootstrap peers; the rest of the mesh is found through the DHT
    const bootstrap = [0, 1].filter((j) => j !== i && j < opts.nodes).map(addrOf)
    const config: NodeConfig = { ...h.config, p2p: { ...h.config.p2p, bootstrap }, chain: { genesis: genesisPath } }
    await saveConfig(homePaths(h.home).config, config)
  }

  // 2. one OS process per node
  const pretty = prettyFactory({ colorize: 'isTTY' in out && out.isTTY === true, ignore: 'pid,hostname', singleLine: true })
  const children: Array<{ index: number; child: ChildProcess; log: WriteStream; exited: boolean; how: string; tail: string[] }> = []
  let stopping = false
  for (const [i, h] of homes.entries()) {
    const log = createWriteStream(join(h.home, 'node.log'), { flags: 'a' })
    const child = spawn(process.execPath, [BIN, 'start', '--home', h.home], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LLMESH_LOG_LEVEL: process.env.LLMESH_LOG_LEVEL ?? 'info' }
    })
    const entry = { index: i, child, log, exited: false, how: '', tail: [] as string[] }
    children.push(entry)
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        log.write(`${line}\n`)
        // the last lines, to say why a node that dies at start-up died
        entry.tail.push(line.slice(0, 300))
        if (entry.tail.length > START_TAIL_LINES) entry.tail.shift()
        if (opts.showLogs) print(`node-${i} | ${formatLine(pretty, line)}`)
      })
    }
    child.on('exit', (code, signal) => {
      entry.exited = true
      entry.how = signal ?? `code ${code}`
      log.end()
      if (!stopping) {
        print(`devnet: node-${i} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); restart it with: llmesh start --home ${h.home}`)
      }
    })
  }

  const stop = new AbortController()
  const onSignal = (): void => stop.abort()
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    // 3. ready when every node is connected to every other
    const apiUrls = homes.map((_, i) => `http://127.0.0.1:${opts.basePort + i}`)
    const statuses = await waitForFullMesh(
      apiUrls,
      homes.map((h) => h.peerId),
      opts.readyTimeoutMs,
      stop.signal,
      () => {
        const dead = children.find((c) => c.exited)
        if (dead != null) {
          // one line, as every error of the CLI
          const last = dead.tail.map((l) => formatLine(pretty, l).trim()).join(' | ')
          throw new DevnetError('DEVNET_START', `node-${dead.index} exited during start-up (${dead.how}), last output: ${last}`, {
            hint: `see ${join(homes[dead.index]?.home ?? dir, 'node.log')}`
          })
        }
      }
    )
    if (statuses == null) return // interrupted while starting
    const edge = homes[0]?.config.roles.includes('edge') === true
    const remoteHosts = hostIndexes.filter((i) => i !== 0).length
    if (tinyCid != null && edge && remoteHosts > 0) {
      const seen = await waitForModel(apiUrls[0] ?? '', tinyCid, remoteHosts, opts.readyTimeoutMs, stop.signal)
      if (!seen) return
    }
    const nodes: DevnetNodeInfo[] = homes.map((h, i) => ({
      index: i,
      peerId: h.peerId,
      home: h.home,
      apiUrl: apiUrls[i] ?? '',
      pid: children[i]?.child.pid ?? 0,
      multiaddrs: statuses[i]?.addresses ?? []
    }))
    // whole or not at all (temporary file, then rename): scripts poll for this file and read it as soon as it appears
    const marker = join(dir, MARKER)
    await writeFile(`${marker}.tmp`, `${JSON.stringify({ nodes }, null, 2)}\n`)
    await rename(`${marker}.tmp`, marker)
    print('')
    print(`devnet ready: ${opts.nodes} node(s) in ${dir}, every node connected to every other; chain llmesh-devnet from ${genesisPath}`)
    for (const n of nodes) {
      print(`  node-${n.index}  ${n.apiUrl}  ${n.peerId}  pid ${n.pid}  roles ${homes[n.index]?.config.roles.join(',')}`)
    }
    if (tinyCid != null) {
      print(`model: ${tinyCid} (${TINY_MODEL.name}) served by node(s) ${hostIndexes.join(', ')} with the ${opts.engine} engine`)
      if (edge) {
        print(`OpenAI API: ${nodes[0]?.apiUrl}/v1 — try:`)
        print(
          `  curl ${nodes[0]?.apiUrl}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"${tinyCid}","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'`
        )
      }
    }
    print(`try: curl ${nodes[0]?.apiUrl}/mesh/status   or: npx llmesh status --api ${nodes[0]?.apiUrl}`)
    print('press Ctrl-C to stop every node')
    print('')
    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve()
      stop.signal.addEventListener('abort', () => resolve(), { once: true })
    })
  } finally {
    stopping = true
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    print('devnet: stopping every node')
    await Promise.all(children.map((c) => stopChild(c.child, c.exited)))
    print('devnet: stopped')
  }
}

function formatLine(pretty: (input: unknown) => string, line: string): string {
  if (!line.startsWith('{')) return line
  try {
    return pretty(line).trimEnd()
  } catch {
    return line
  }
}

/** A devnet dir is created anew: an empty or earlier devnet dir is cleared, anything else refused. */
async function freshDir(dir: string): Promise<void> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch {
    await mkdir(dir, { recursive: true })
    return
  }
  if (entries.length === 0) return
  const isDevnet = entries.includes(MARKER) || entries.every((e) => /^node-\d+$/.test(e))
  if (!isDevnet) {
    throw new DevnetError('DEVNET_DIR', `${dir} exists and is not a devnet directory`, {
      hint: 'choose another --dir or remove it yourself'
    })
  }
  for (const e of entries.filter((e) => /^node-\d+$/.test(e))) {
    const pid = Number.parseInt(await readFile(join(dir, e, 'node.pid'), 'utf8').catch(() => ''), 10)
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      throw new DevnetError('DEVNET_DIR', `a node of a devnet in ${dir} is still running (${e}, pid ${pid})`, {
        hint: 'stop that devnet first (Ctrl-C in its terminal) or choose another --dir'
      })
    }
  }
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
}

async function checkPortsFree(opts: DevnetOptions): Promise<void> {
  for (let i = 0; i < opts.nodes; i++) {
    for (const [what, port, flag] of [
      ['API', opts.basePort + i, '--base-port'],
      ['p2p', opts.p2pBasePort + i, '--p2p-base-port']
    ] as const) {
      if (!(await portFree(port))) {
        throw new DevnetError('DEVNET_PORT', `port ${port} (node-${i} ${what}) is already in use`, {
          hint: `stop what uses it or pass another ${flag}`
        })
      }
    }
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
  })
}

async function waitForFullMesh(
  apiUrls: string[],
  peerIds: string[],
  timeoutMs: number,
  signal: AbortSignal,
  check: () => void
): Promise<NodeStatus[] | undefined> {
  const deadline = Date.now() + timeoutMs
  let lastMissing = ''
  while (Date.now() < deadline) {
    if (signal.aborted) return undefined
    check()
    const statuses = await Promise.all(apiUrls.map((url) => fetchStatus(url)))
    const missing = statuses.flatMap((s, i) => {
      if (s == null) return [`node-${i} API not up`]
      const others = peerIds.filter((p, j) => j !== i && !s.peers.includes(p))
      return others.length === 0 ? [] : [`node-${i} misses ${others.length} peer(s)`]
    })
    if (missing.length === 0) return statuses as NodeStatus[]
    lastMissing = missing.join(', ')
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new DevnetError('DEVNET_START', `the mesh did not form within ${timeoutMs} ms (${lastMissing})`, {
    hint: 'see the node-i/node.log files in the devnet dir'
  })
}

/** Waits until the edge at `apiUrl` hears the adverts of `hosts` hosts serving `cid`; false if interrupted. */
async function waitForModel(apiUrl: string, cid: string, hosts: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  let heard = 0
  while (Date.now() < deadline) {
    if (signal.aborted) return false
    try {
      const res = await fetch(`${apiUrl}/v1/models`, { signal: AbortSignal.timeout(2_000) })
      const body = (await res.json()) as { data?: Array<{ llmesh?: { cid: string; hosts: string[] } }> }
      heard = body.data?.find((m) => m.llmesh?.cid === cid)?.llmesh?.hosts.length ?? 0
      if (heard >= hosts) return true
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new DevnetError('DEVNET_START', `the edge heard ${heard} of ${hosts} hosts serving ${cid} within ${timeoutMs} ms`, {
    hint: 'see the node-i/node.log files of the host nodes (did the model load?)'
  })
}

async function fetchStatus(apiUrl: string): Promise<NodeStatus | undefined> {
  try {
    const res = await fetch(`${apiUrl}/mesh/status`, { signal: AbortSignal.timeout(2_000) })
    return res.ok ? ((await res.json()) as NodeStatus) : undefined
  } catch {
    return undefined
  }
}

async function stopChild(child: ChildProcess, exited: boolean): Promise<void> {
  if (exited || child.exitCode != null || child.signalCode != null) return
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await done
  clearTimeout(timer)
}
