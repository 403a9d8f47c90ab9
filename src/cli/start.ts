import { loadIdentityKey } from '../crypto/index.ts'
import { createApiServer, listenApi } from '../gateway/index.ts'
import { createLogger, homePaths, LlmeshNode, loadConfig } from '../node/index.ts'
import { DEFAULTS } from '../params/index.ts'

/**
 * `llmesh start`: runs one node in the foreground until SIGINT or SIGTERM, then closes the API,
 * the streams and the stores and resolves. Errors before the node is up are thrown to the CLI.
 */
export async function runStart(home: string): Promise<void> {
  const paths = homePaths(home)
  const config = await loadConfig(paths.config, process.env)
  const privateKey = await loadIdentityKey(paths.key)
  const log = createLogger(config.log)

  const stop = new AbortController()
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stop.signal.aborted) return
    log.info({ signal }, 'stopping')
    stop.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const node = new LlmeshNode({ paths, config, privateKey, log })
  const app = createApiServer(node)
  try {
    await node.start()
    const url = await listenApi(app, config.api.host, config.api.port, paths.config)
    node.setApiUrl(url)
    log.info({ apiUrl: url }, 'API listening')
    await node.joinMesh(stop.signal)
    if (!stop.signal.aborted) {
      await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }))
    }
  } finally {
    // a stop that hangs (a peer that never closes its stream) must not keep the process alive; a
    // host's drain (host.stopDrainMs) comes on top
    const timeoutMs = DEFAULTS.shutdownTimeoutMs + (config.roles.includes('host') ? config.host.stopDrainMs : 0)
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, 'shutdown timed out; exiting')
      process.exit(1)
    }, timeoutMs)
    timer.unref()
    await app.close().catch(() => {})
    await node.stop()
    clearTimeout(timer)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    log.info('node stopped')
    log.flush()
  }
}
