import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import { CID } from 'multiformats/cid'
import { z } from 'zod'
import { LlmeshError } from '../errors/index.ts'
import { type LlmeshNode, PortInUseError } from '../node/index.ts'
import { LIMITS } from '../params/index.ts'
import { registerChainRoutes } from './chain-routes.ts'
import { apiError } from './errors.ts'
import { registerModelRoutes } from './model-routes.ts'
import { registerOpenAiRoutes } from './openai-routes.ts'

const CidParam = z.string().min(1).max(256)
const ProvideBody = z.object({ cid: CidParam }).strict()

function parseCid(text: string): CID | undefined {
  try {
    return CID.parse(text)
  } catch {
    return undefined
  }
}

/**
 * The node's HTTP API: `/mesh/*` as JSON and `/metrics` for Prometheus. Every body is bounded,
 * every error is `{ error: { message, type, code } }`, and bad input changes nothing.
 */
export function createApiServer(node: LlmeshNode): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: LIMITS.maxHttpBodyBytes,
    routerOptions: { maxParamLength: LIMITS.maxUrlParamBytes },
    // errors raised before routing (bad URL, oversized parameter) get the same body shape
    frameworkErrors: (err, _req, reply) => {
      void reply.code((err.statusCode ?? 400) as never).send(apiError(err.message, 'invalid_request_error', err.code) as never)
    }
  })
  app.addHook('onResponse', async (req, reply) => {
    node.metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) })
  })

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode ?? 500
    if (status >= 500) node.log.error({ err }, 'API request failed')
    const code = err instanceof LlmeshError ? err.code : (err.code ?? 'internal_error')
    const type = status === 413 ? 'request_too_large' : status < 500 ? 'invalid_request_error' : 'server_error'
    return reply.status(status).send(apiError(status < 500 ? err.message : 'internal error; see the node log', type, code))
  })

  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send(apiError(`no route ${req.method} ${req.url}`, 'invalid_request_error', 'not_found'))
  )

  app.get('/mesh/status', async () => node.status())

  app.get('/mesh/peers', async () => ({
    connected: node.libp2p.getConnections().map((c) => ({
      peerId: c.remotePeer.toString(),
      address: c.remoteAddr.toString(),
      direction: c.direction,
      streams: c.streams.length
    })),
    known: node.knownPeers()
  }))

  app.post('/mesh/presence', async () => ({ seq: await node.announcePresence() }))

  app.post('/mesh/dht/provide', async (req, reply) => {
    const body = ProvideBody.safeParse(req.body)
    const cid = body.success ? parseCid(body.data.cid) : undefined
    if (cid == null) return reply.status(400).send(apiError('body must be {"cid": "<a CID>"}', 'invalid_request_error', 'invalid_cid'))
    await node.provide(cid)
    return { cid: cid.toString(), provider: node.status().peerId }
  })

  app.get<{ Params: { cid: string } }>('/mesh/dht/providers/:cid', async (req, reply) => {
    const cid = CidParam.safeParse(req.params.cid).success ? parseCid(req.params.cid) : undefined
    if (cid == null)
      return reply.status(400).send(apiError(`${req.params.cid.slice(0, 80)} is not a CID`, 'invalid_request_error', 'invalid_cid'))
    return { cid: cid.toString(), providers: await node.findProviders(cid) }
  })

  registerChainRoutes(app, node)
  registerModelRoutes(app, { list: () => node.models.list(), fetch: (cid, options) => node.models.fetch(cid, options) })
  registerOpenAiRoutes(app, () => node.mesh)

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', node.metrics.registry.contentType)
    return node.metrics.registry.metrics()
  })

  return app
}

/** Listens on `host:port` and returns the base URL; a taken port becomes a PortInUseError. */
export async function listenApi(app: FastifyInstance, host: string, port: number, configPath: string): Promise<string> {
  try {
    await app.listen({ host, port })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new PortInUseError('PORT_IN_USE', `api.port ${port} (api.host ${host}) in ${configPath} is already in use`, {
        hint: 'stop the process using it or set another api.port',
        cause: err
      })
    }
    throw err
  }
  const address = app.server.address()
  const bound = typeof address === 'object' && address != null ? address.port : port
  const shownHost = host.includes(':') ? `[${host}]` : host
  return `http://${shownHost}:${bound}`
}
