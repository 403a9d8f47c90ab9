import { PassThrough } from 'node:stream'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { z } from 'zod'
import { LlmeshError } from '../errors/index.ts'
import { type ModelFetchProgress, type ModelService, parseModelCid, type StoredModel } from '../models/index.ts'
import { INFERENCE_LIMITS } from '../params/index.ts'
import { apiError } from './errors.ts'

export const MODEL_ROUTE_LIMITS = {
  /** Largest body of `POST /mesh/models/fetch` (`{"cid": "…"}`). */
  fetchBodyBytes: 1024,
  /** Fewest ms between two progress lines while blocks arrive (phase changes are always sent). */
  progressIntervalMs: 250
} as const

/** What the routes use of the node's `ModelService` (a fake in tests). */
export type ModelCatalog = Pick<ModelService, 'list' | 'fetch'>

/** One line of the `POST /mesh/models/fetch` stream (NDJSON). */
export type ModelFetchEvent =
  | {
      event: 'progress'
      phase: ModelFetchProgress['phase']
      providers: number
      /** Blocks of the DAG done: already stored plus fetched. */
      blocks: number
      blocksFetched: number
      /** Bytes of the file done: already stored plus fetched. */
      bytes: number
      bytesFetched: number
      /** Bytes of the file, once the root is known. */
      totalBytes?: number
    }
  | { event: 'done'; model: ModelView }
  | { event: 'error'; message: string; code: string }

export type ModelView = Pick<StoredModel, 'cid' | 'name' | 'size' | 'blocks' | 'sha256' | 'source' | 'addedAt'>

const FetchBody = z.object({ cid: z.string().min(1).max(INFERENCE_LIMITS.maxModelIdBytes) }).strict()

function view(m: StoredModel): ModelView {
  return { cid: m.cid, name: m.name, size: m.size, blocks: m.blocks, sha256: m.sha256, source: m.source, addedAt: m.addedAt }
}

function progressEvent(p: ModelFetchProgress): ModelFetchEvent {
  return {
    event: 'progress',
    phase: p.phase,
    providers: p.providers,
    blocks: p.blocksPresent + p.blocksFetched,
    blocksFetched: p.blocksFetched,
    bytes: Math.min(p.fileSize, p.bytesPresent + p.bytesFetched),
    bytesFetched: p.bytesFetched,
    ...(p.fileSize > 0 ? { totalBytes: p.fileSize } : {})
  }
}

function noModels(reply: FastifyReply) {
  return reply.status(404).send(apiError('this node runs no model store', 'invalid_request_error', 'no_models'))
}

/**
 * `GET /mesh/models` (the models this node stores) and `POST /mesh/models/fetch` (fetch one from
 * the peers providing it, streaming progress as NDJSON; a client that disconnects abandons it).
 */
export function registerModelRoutes(app: FastifyInstance, models: ModelCatalog | undefined): void {
  app.get('/mesh/models', async (_req, reply) => {
    if (models == null) return noModels(reply)
    return { models: (await models.list()).map(view) }
  })

  app.post('/mesh/models/fetch', { bodyLimit: MODEL_ROUTE_LIMITS.fetchBodyBytes }, async (req, reply) => {
    if (models == null) return noModels(reply)
    const body = FetchBody.safeParse(req.body)
    if (!body.success) {
      return reply.status(400).send(apiError('body must be {"cid": "<model CID>"}', 'invalid_request_error', 'invalid_body'))
    }
    let cid: string
    try {
      cid = parseModelCid(body.data.cid).toString()
    } catch (err) {
      return reply.status(400).send(apiError((err as Error).message, 'invalid_request_error', 'invalid_cid'))
    }
    const out = new PassThrough()
    const write = (event: ModelFetchEvent): void => {
      if (!out.destroyed && !out.writableEnded) out.write(`${JSON.stringify(event)}\n`)
    }
    const controller = new AbortController()
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new Error('the API client disconnected'))
    })
    let lastPhase: string | undefined
    let lastAt = 0
    const onProgress = (p: ModelFetchProgress): void => {
      const now = Date.now()
      if (p.phase === lastPhase && now - lastAt < MODEL_ROUTE_LIMITS.progressIntervalMs) return
      // a slow reader gets fewer progress lines, never a growing buffer (each line supersedes the last)
      if (p.phase === lastPhase && out.writableNeedDrain) return
      lastPhase = p.phase
      lastAt = now
      write(progressEvent(p))
    }
    models
      .fetch(cid, { signal: controller.signal, onProgress })
      .then(
        (model) => write({ event: 'done', model: view(model) }),
        (err: unknown) => {
          if (controller.signal.aborted) return
          if (err instanceof LlmeshError) {
            write({ event: 'error', message: err.message, code: err.code })
          } else {
            app.log.error({ err }, 'model fetch failed')
            write({ event: 'error', message: `internal error: ${(err as Error).message}`, code: 'internal_error' })
          }
        }
      )
      .finally(() => out.end())
    return reply.header('content-type', 'application/x-ndjson; charset=utf-8').header('cache-control', 'no-store').send(out)
  })
}
