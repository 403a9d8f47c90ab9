import { readFile, rename, stat, writeFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { isSystemError, LlmeshError } from '../errors/index.ts'
import {
  DEFAULT_API_HOST,
  DEFAULT_API_PORT,
  DEFAULT_P2P_PORT,
  DEFAULTS,
  EDGE_DEFAULTS,
  HOST_LIMITS,
  INFERENCE_DEFAULTS,
  INFERENCE_LIMITS,
  LIMITS,
  ROLES
} from '../params/index.ts'

export type ConfigErrorCode = 'CONFIG_NOT_FOUND' | 'CONFIG_UNREADABLE' | 'CONFIG_INVALID'

export class ConfigError extends LlmeshError<ConfigErrorCode> {
  readonly path: string
  constructor(code: ConfigErrorCode, path: string, message: string, hint?: string, cause?: unknown) {
    super(code, message, { hint, cause })
    this.path = path
  }
}

const multiaddrString = z
  .string()
  .max(1024)
  .refine(
    (s) => {
      try {
        multiaddr(s)
        return true
      } catch {
        return false
      }
    },
    { message: 'not a valid multiaddr (example: /ip4/127.0.0.1/tcp/4001)' }
  )

const peerAddrString = multiaddrString.refine(
  (s) =>
    multiaddr(s)
      .getComponents()
      .some((c) => c.name === 'p2p'),
  {
    message: 'must end with /p2p/<peer id> so the node can check whom it reached'
  }
)

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export const ConfigSchema = z
  .object({
    roles: z
      .array(z.enum(ROLES))
      .max(ROLES.length)
      .refine((r) => new Set(r).size === r.length, { message: 'lists a role twice' })
      .default(['edge']),
    p2p: z
      .object({
        listen: z
          .array(multiaddrString)
          .min(1)
          .max(16)
          .default([`/ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}`]),
        announce: z.array(multiaddrString).max(16).default([]),
        bootstrap: z.array(peerAddrString).max(64).default([]),
        bootstrapTimeoutMs: z.number().int().min(1_000).max(600_000).default(DEFAULTS.bootstrapTimeoutMs),
        maxConnections: z.number().int().min(1).max(10_000).default(LIMITS.maxConnections),
        targetPeers: z.number().int().min(0).max(10_000).default(DEFAULTS.targetPeers),
        /** Every node shares one IP (devnet, tests): relax per-IP limits, keep loopback addresses. */
        localNetwork: z.boolean().default(false)
      })
      .strict()
      .prefault({}),
    api: z
      .object({
        host: z.string().min(1).max(255).default(DEFAULT_API_HOST),
        port: z.number().int().min(0).max(65_535).default(DEFAULT_API_PORT)
      })
      .strict()
      .prefault({}),
    chain: z
      .object({
        /** The genesis file (absolute, or relative to the home); null: this node runs no chain. */
        genesis: z.string().min(1).max(4096).nullable().default(null)
      })
      .strict()
      .prefault({}),
    host: z
      .object({
        /** `llama`: llama.cpp on the GGUF files; `echo`: answers with the prompt, for measuring the mesh. */
        engine: z.enum(['llama', 'echo']).default('llama'),
        /** CIDs of the stored models this host serves (`llmesh model add` / `llmesh model get` put them in the store). */
        models: z.array(z.string().min(1).max(INFERENCE_LIMITS.maxModelIdBytes)).max(INFERENCE_LIMITS.maxLoadedModels).default([]),
        /** CPU threads per model; 1 decodes fastest on 2 cores. */
        threads: z.number().int().min(1).max(256).default(INFERENCE_DEFAULTS.threads),
        /** Generations each model runs at once; more wait in its queue. */
        sequences: z.number().int().min(1).max(64).default(INFERENCE_DEFAULTS.sequences),
        /** Context window per sequence (capped by the model's training context). */
        contextSize: z.number().int().min(64).max(1_048_576).default(INFERENCE_DEFAULTS.contextSize),
        /** Price asked, as a multiplier of the base fee in basis points (10,000 = 1x); advertised. */
        priceBps: z.number().int().min(0).max(1_000_000).default(10_000),
        /** Jobs one peer may have running or queued here at once (0 refuses every job: a host draining). */
        maxJobsPerPeer: z.number().int().min(0).max(100_000).default(HOST_LIMITS.maxJobsPerPeer),
        /** Requests per second one peer may start, with bursts up to twice that. */
        requestsPerSecondPerPeer: z.number().int().min(1).max(1_000_000).default(HOST_LIMITS.requestsPerSecondPerPeer),
        /** On stop, the longest wait for running jobs and for the vouchers of answered ones (new jobs are refused meanwhile). */
        stopDrainMs: z.number().int().min(0).max(600_000).default(HOST_LIMITS.stopDrainMs)
      })
      .strict()
      .prefault({}),
    edge: z
      .object({
        /** Hosts tried for one request before giving up (failover happens before the first token only). */
        maxAttempts: z.number().int().min(1).max(16).default(EDGE_DEFAULTS.maxAttempts),
        /** A host that sends no first token within this time is given up for the next. */
        firstTokenTimeoutMs: z.number().int().min(100).max(3_600_000).default(EDGE_DEFAULTS.firstTokenTimeoutMs),
        /** Receipt signatures are checked on a session's first receipt, then once per this interval (0: every receipt). */
        receiptCheckIntervalMs: z.number().int().min(0).max(3_600_000).default(EDGE_DEFAULTS.receiptCheckIntervalMs)
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: logLevel.default('info'),
        format: z.enum(['json', 'pretty']).default('json')
      })
      .strict()
      .prefault({})
  })
  .strict()

export type NodeConfig = z.infer<typeof ConfigSchema>
export type ConfigInput = z.input<typeof ConfigSchema>

/** Validates a config object, naming the first bad setting as `section.key` in the error. */
export function parseConfig(input: unknown, path: string): NodeConfig {
  const result = ConfigSchema.safeParse(input)
  if (result.success) return result.data
  const issues = result.error.issues.slice(0, 3).map((issue) => {
    const where = issue.path.length === 0 ? '(top level)' : issue.path.map(String).join('.')
    return `${where}: ${issue.message}`
  })
  throw new ConfigError(
    'CONFIG_INVALID',
    path,
    `config ${path} is invalid: ${issues.join('; ')}`,
    'fix the setting named above (see docs/configuration.md)'
  )
}

/** Reads and validates the JSON config at `path`; `LLMESH_LOG_LEVEL` overrides `log.level`. */
export async function loadConfig(path: string, env: NodeJS.ProcessEnv = {}): Promise<NodeConfig> {
  let text: string
  try {
    const info = await stat(path)
    if (info.size > LIMITS.maxConfigBytes) {
      throw new ConfigError(
        'CONFIG_INVALID',
        path,
        `config ${path} is ${info.size} bytes, over the ${LIMITS.maxConfigBytes}-byte limit`,
        'a config is a small JSON file; check that this is the right file'
      )
    }
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (err instanceof ConfigError) throw err
    if (isSystemError(err, 'ENOENT')) {
      throw new ConfigError('CONFIG_NOT_FOUND', path, `config ${path} not found`, 'run `llmesh init --home <dir>` first', err)
    }
    throw new ConfigError('CONFIG_UNREADABLE', path, `cannot read config ${path}: ${(err as Error).message}`, undefined, err)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(
      'CONFIG_INVALID',
      path,
      `config ${path} is not valid JSON: ${(err as Error).message}`,
      'fix the syntax (a JSON object, double-quoted keys, no trailing commas)',
      err
    )
  }
  const config = parseConfig(json, path)
  const level = env.LLMESH_LOG_LEVEL
  if (level != null && level !== '') {
    const parsed = logLevel.safeParse(level)
    if (!parsed.success) {
      throw new ConfigError(
        'CONFIG_INVALID',
        path,
        `LLMESH_LOG_LEVEL=${level} is not a log level`,
        `use one of ${logLevel.options.join(', ')}`
      )
    }
    config.log.level = parsed.data
  }
  return config
}

/** The text of a config file: every setting spelled out, so an operator can read and edit it. */
export function renderConfig(config: NodeConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`
}

/** Writes `config` to `path` atomically (temporary file, then rename): whole or unchanged. */
export async function saveConfig(path: string, config: NodeConfig): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, renderConfig(config), { mode: 0o644 })
  await rename(tmp, path)
}
