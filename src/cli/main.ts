/**
 * CLI: the `llmesh` command. Each subcommand is a thin shell over the node, gateway and devnet;
 * every error a user can cause ends as one line on stderr and a non-zero exit code.
 * Subcommands import what they need when they run: loading libp2p takes most of a second, and
 * `llmesh status` or `--help` need none of it.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { LlmeshError } from '../errors/index.ts'
import { DEFAULT_API_HOST, DEFAULT_API_PORT, DEFAULT_P2P_PORT, ROLES, type Role, VERSION } from '../params/index.ts'
import { resolveApi } from './api-client.ts'

function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`)
    return n
  }
}

function engineOption(value: string): 'llama' | 'echo' {
  if (value !== 'llama' && value !== 'echo') throw new InvalidArgumentError('use llama or echo')
  return value
}

function rolesOption(value: string): Role[] {
  const roles = value
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '')
  for (const r of roles) {
    if (!(ROLES as readonly string[]).includes(r)) throw new InvalidArgumentError(`unknown role ${r}; roles are ${ROLES.join(', ')}`)
  }
  return roles as Role[]
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

const DEFAULT_HOME = join(homedir(), '.llmesh')

export function buildProgram(): Command {
  const program = new Command()
    .name('llmesh')
    .description('LLMESH: a peer-to-peer network for AI inference')
    .version(VERSION)
    .showHelpAfterError()

  program
    .command('init')
    .description('create a node home: an identity key and a readable config file')
    .option('--home <dir>', 'node home directory', DEFAULT_HOME)
    .option('--roles <list>', `comma-separated roles (${ROLES.join(', ')})`, rolesOption, ['edge'] as Role[])
    .option('--api-port <port>', 'HTTP API port', intOption('--api-port', 0, 65_535), DEFAULT_API_PORT)
    .option('--api-host <host>', 'HTTP API bind address', DEFAULT_API_HOST)
    .option('--p2p-port <port>', 'libp2p TCP port', intOption('--p2p-port', 0, 65_535), DEFAULT_P2P_PORT)
    .option('--bootstrap <multiaddr>', 'bootstrap peer /ip4/.../tcp/.../p2p/<id> (repeatable)', collect, [] as string[])
    .action(async (o: { home: string; roles: Role[]; apiPort: number; apiHost: string; p2pPort: number; bootstrap: string[] }) => {
      const { initHome } = await import('../node/index.ts')
      const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
      const { paths, privateKey } = await initHome(o.home, {
        roles: o.roles,
        api: { host: o.apiHost, port: o.apiPort },
        p2p: { listen: [`/ip4/0.0.0.0/tcp/${o.p2pPort}`], bootstrap: o.bootstrap }
      })
      process.stdout.write(
        `initialised node home ${paths.home}\n  peer id  ${peerIdFromPrivateKey(privateKey).toString()}\n  key      ${paths.key} (mode 0600)\n  config   ${paths.config}\nstart it with: llmesh start --home ${paths.home}\n`
      )
    })

  program
    .command('start')
    .description('run one node in the foreground (SIGINT/SIGTERM stop it cleanly)')
    .option('--home <dir>', 'node home directory', DEFAULT_HOME)
    .action(async (o: { home: string }) => {
      const { runStart } = await import('./start.ts')
      await runStart(o.home)
    })

  program
    .command('devnet')
    .description('start a fresh local network, one OS process per node')
    .option('--nodes <n>', 'number of nodes', intOption('--nodes', 1, 64), 4)
    .option('--dir <dir>', 'directory for the node homes (cleared first)', '.devnet')
    .option('--base-port <port>', 'node i serves its HTTP API on base-port + i', intOption('--base-port', 1024, 65_000), 8080)
    .option(
      '--p2p-base-port <port>',
      'node i listens for libp2p on this + i (default: base-port + 1000)',
      intOption('--p2p-base-port', 1024, 65_000)
    )
    .option('--edge-roles <list>', 'roles of node 0, the edge applications talk to', rolesOption, ['edge', 'validator'] as Role[])
    .option('--roles <list>', 'roles of the other nodes', rolesOption, ['edge', 'host', 'validator'] as Role[])
    .option('--ready-timeout <ms>', 'how long to wait for the full mesh', intOption('--ready-timeout', 1_000, 600_000), 60_000)
    .option('--block-time <ms>', 'target block interval of the devnet chain', intOption('--block-time', 100, 60_000), 2_000)
    .option('--quiet', "do not print the nodes' logs (they are still in DIR/node-i/node.log)")
    .option(
      '--engine <engine>',
      'engine of the host nodes: llama (the built-in tiny model on llama.cpp) or echo (instant, for benchmarks)',
      engineOption,
      'llama'
    )
    .action(
      async (o: {
        nodes: number
        dir: string
        basePort: number
        p2pBasePort?: number
        edgeRoles: Role[]
        roles: Role[]
        readyTimeout: number
        blockTime: number
        quiet?: boolean
        engine: 'llama' | 'echo'
      }) => {
        const { runDevnet } = await import('./devnet.ts')
        await runDevnet({
          nodes: o.nodes,
          dir: o.dir,
          basePort: o.basePort,
          p2pBasePort: o.p2pBasePort ?? o.basePort + 1000,
          edgeRoles: o.edgeRoles,
          otherRoles: o.roles,
          readyTimeoutMs: o.readyTimeout,
          blockTimeMs: o.blockTime,
          showLogs: o.quiet !== true,
          engine: o.engine
        })
      }
    )

  program
    .command('status')
    .description("print a node's status")
    .option('--api <url>', 'node API URL (default: from --home, else http://127.0.0.1:8080)')
    .option('--home <dir>', 'read the API address from this node home')
    .option('--json', 'print JSON')
    .action(async (o: { api?: string; home?: string; json?: boolean }) => {
      const { runStatus } = await import('./status.ts')
      await runStatus(await resolveApi(o), o.json === true)
    })

  const apiOptions = (c: Command): Command =>
    c
      .option('--api <url>', 'node API URL (default: from --home, else http://127.0.0.1:8080)')
      .option('--home <dir>', 'node home (its API, and its key for transactions)')

  const chain = program.command('chain').description('the MESH chain')
  apiOptions(chain.command('status').description('chain id, height, last block, validators')).action(
    async (o: { api?: string; home?: string }) => {
      const { runChainStatus } = await import('./chain.ts')
      await runChainStatus(await resolveApi(o))
    }
  )
  apiOptions(
    chain.command('block').argument('[height]', 'block height (default: the latest)').description('one block with its transactions')
  ).action(async (height: string | undefined, o: { api?: string; home?: string }) => {
    const { runChainBlock } = await import('./chain.ts')
    await runChainBlock(await resolveApi(o), height)
  })

  apiOptions(
    program
      .command('account')
      .argument('[address]', 'account address (default: the key of --home)')
      .description('balance, nonce and stakes')
  ).action(async (address: string | undefined, o: { api?: string; home?: string }) => {
    const { runAccount } = await import('./chain.ts')
    let addr = address
    if (addr == null) {
      const { loadIdentityKey, signerFromPrivateKey } = await import('../crypto/index.ts')
      const { homePaths } = await import('../node/index.ts')
      addr = signerFromPrivateKey(await loadIdentityKey(homePaths(o.home ?? DEFAULT_HOME).key)).address
    }
    await runAccount(await resolveApi(o), addr)
  })

  const model = program.command('model').description('the content-addressed model store of a node home')
  const homeOption = (c: Command): Command => c.option('--home <dir>', 'node home', DEFAULT_HOME)
  homeOption(
    model
      .command('add')
      .argument('<file>', 'a GGUF model file')
      .option('--name <name>', 'a name for people')
      .description('import a GGUF file; prints its CID')
  ).action(async (file: string, o: { home: string; name?: string }) => {
    const { runModelAdd } = await import('./model.ts')
    await runModelAdd(o.home, file, o.name)
  })
  homeOption(model.command('ls').option('--json', 'print JSON').description('list stored models')).action(
    async (o: { home: string; json?: boolean }) => {
      const { runModelList } = await import('./model.ts')
      await runModelList(o.home, o.json === true)
    }
  )
  homeOption(
    model.command('rm').argument('<cid>', 'model CID').description('remove a model (blocks shared with other models stay)')
  ).action(async (cid: string, o: { home: string }) => {
    const { runModelRemove } = await import('./model.ts')
    await runModelRemove(o.home, cid)
  })
  homeOption(
    model
      .command('export')
      .argument('<cid>', 'model CID')
      .argument('<file>', 'where to write the GGUF file')
      .description('write a model back, byte-identical')
  ).action(async (cid: string, file: string, o: { home: string }) => {
    const { runModelExport } = await import('./model.ts')
    await runModelExport(o.home, cid, file)
  })

  apiOptions(
    model
      .command('get')
      .argument('<cid>', 'model CID')
      .description('fetch a model from the peers that provide it, through the running node (--api, or the node of --home)')
  ).action(async (cid: string, o: { api?: string; home?: string }) => {
    const { runModelGet } = await import('./model.ts')
    await runModelGet(await resolveApi(o), cid)
  })

  const tx = program.command('tx').description('sign a transaction with the key of --home and submit it')
  const txOptions = (c: Command): Command =>
    apiOptions(c)
      .option('--fee <n>', 'fee in the smallest unit', '0')
      .option('--no-wait', 'return once submitted instead of waiting for the commit')
  type TxOpts = { api?: string; home?: string; fee: string; wait: boolean }
  const submit = async (o: TxOpts, body: import('../chain/index.ts').TxBody): Promise<void> => {
    const { parseAmount, runTx } = await import('./chain.ts')
    const home = o.home ?? DEFAULT_HOME
    await runTx({ api: await resolveApi({ api: o.api, home }), home, body, fee: parseAmount('--fee', o.fee), wait: o.wait })
  }
  txOptions(
    tx.command('transfer').description('send tokens').requiredOption('--to <address>', 'recipient').requiredOption('--amount <n>', 'amount')
  ).action(async (o: TxOpts & { to: string; amount: string }) => {
    const { parseAmount } = await import('./chain.ts')
    await submit(o, { type: 'transfer', to: o.to, amount: parseAmount('--amount', o.amount) })
  })
  for (const type of ['stake', 'unstake'] as const) {
    txOptions(
      tx
        .command(type)
        .description(type === 'stake' ? 'bond tokens as a validator or host' : 'start unbonding staked tokens')
        .requiredOption('--role <role>', 'validator or host')
        .requiredOption('--amount <n>', 'amount')
    ).action(async (o: TxOpts & { role: string; amount: string }) => {
      const { parseAmount, parseStakeRole } = await import('./chain.ts')
      await submit(o, { type, role: parseStakeRole(o.role), amount: parseAmount('--amount', o.amount) })
    })
  }

  const escrow = tx.command('escrow').description('the escrow that pays hosts through vouchers')
  for (const action of ['open', 'topup'] as const) {
    txOptions(
      escrow
        .command(action)
        .description(action === 'open' ? 'lock tokens in a new escrow' : 'add tokens to your escrow')
        .requiredOption('--amount <n>', 'amount')
    ).action(async (o: TxOpts & { amount: string }) => {
      const { parseAmount } = await import('./chain.ts')
      await submit(o, { type: action === 'open' ? 'escrow-open' : 'escrow-topup', amount: parseAmount('--amount', o.amount) })
    })
  }
  txOptions(escrow.command('close').description('close your escrow: what is left returns after the close delay')).action(
    async (o: TxOpts) => submit(o, { type: 'escrow-close' })
  )

  const gov = program.command('gov').description('governance: propose and vote on changes of the chain parameters')
  txOptions(
    gov
      .command('propose')
      .description('propose parameter changes; if the validators pass them, they apply at the end of block --at')
      .option('--set <name=value>', 'a parameter and its new value, e.g. baseFee=20 (repeatable)', collect, [] as string[])
      .requiredOption(
        '--at <height>',
        'apply height: at least the height of the block that carries the proposal + govVotingBlocks',
        intOption('--at', 1, Number.MAX_SAFE_INTEGER)
      )
  ).action(async (o: TxOpts & { set: string[]; at: number }) => {
    const { parseGovChanges } = await import('./chain.ts')
    await submit(o, { type: 'gov-propose', changes: parseGovChanges(o.set), applyHeight: o.at })
  })
  txOptions(
    gov
      .command('vote')
      .argument('<id>', 'proposal id (see gov ls)')
      .argument('<choice>', 'yes, no or abstain')
      .description('vote on an open proposal (validators of its snapshot); a later vote replaces an earlier one')
  ).action(async (id: string, choice: string, o: TxOpts) => {
    const { parseGovVote } = await import('./chain.ts')
    await submit(o, { type: 'gov-vote', ...parseGovVote(id, choice) })
  })
  apiOptions(gov.command('ls').description('open proposals and recently finished ones, with their tallies'))
    .option('--json', 'print JSON')
    .action(async (o: { api?: string; home?: string; json?: boolean }) => {
      const { runGovList } = await import('./chain.ts')
      await runGovList(await resolveApi({ api: o.api, home: o.home }), o.json === true)
    })

  apiOptions(program.command('fees').description('the current price of every registered model'))
    .option('--json', 'print JSON')
    .action(async (o: { api?: string; home?: string; json?: boolean }) => {
      const { runFees } = await import('./chain.ts')
      await runFees(await resolveApi({ api: o.api, home: o.home }), o.json === true)
    })

  return program
}

/** Runs the CLI; a user-facing error prints one line and exits 1. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv)
    process.exitCode ??= 0
  } catch (err) {
    if (err instanceof LlmeshError) {
      process.stderr.write(`llmesh: error: ${err.message}\n`)
    } else {
      process.stderr.write(`llmesh: unexpected error: ${(err as Error).stack ?? String(err)}\n`)
    }
    process.exitCode = 1
  }
}
