import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import {
  type ChatMessage,
  HostError,
  InferenceInputError,
  type NormalizedRequest,
  normalizeGenerateRequest,
  receiptJson
} from '../inference/index.ts'
import { EdgeError, type MeshGeneration, type MeshInference } from '../node/mesh-inference.ts'
import { EDGE_DEFAULTS, INFERENCE_LIMITS } from '../params/index.ts'
import { PaymentError } from '../payments/index.ts'
import { apiError } from './errors.ts'

/**
 * The OpenAI-compatible API of an edge: `GET /v1/models`, `POST /v1/chat/completions`,
 * `POST /v1/completions` (with `stream: true` as server-sent events). Every answer names the
 * host that served it (`x-llmesh-host`) and carries the host's signed receipt (`x-llmesh-receipt`
 * header, base64 of its DAG-CBOR bytes, and the `llmesh` extension field). See docs/http-api.md.
 */

const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(INFERENCE_LIMITS.maxStopSequences)]).optional()

const common = {
  model: z.string().min(1).max(INFERENCE_LIMITS.maxModelIdBytes),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(INFERENCE_LIMITS.maxTemperature).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** Not in OpenAI's API; llama.cpp servers accept it. */
  top_k: z.number().int().min(0).max(INFERENCE_LIMITS.maxTopK).nullish(),
  seed: z.number().int().min(0).max(INFERENCE_LIMITS.maxSeed).nullish(),
  stop: stop.nullable(),
  n: z.literal(1, { message: 'only n = 1 is supported' }).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish()
}

const ContentPart = z.object({ type: z.literal('text'), text: z.string() })
const ChatBody = z.object({
  ...common,
  max_completion_tokens: z.number().int().min(1).nullish(),
  messages: z
    .array(
      z.object({
        role: z.enum(['system', 'developer', 'user', 'assistant']),
        content: z.union([z.string(), z.array(ContentPart).max(INFERENCE_LIMITS.maxChatMessages)])
      })
    )
    .min(1)
    .max(INFERENCE_LIMITS.maxChatMessages)
})

const CompletionBody = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).length(1, { message: 'only one prompt per request is supported' })]),
  echo: z.literal(false, { message: 'echo is not supported' }).nullish(),
  suffix: z.null({ message: 'suffix is not supported' }).optional()
})

type Kind = 'chat' | 'completion'

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type: string = 'invalid_request_error'
  ) {
    super(message)
  }
}

function zodMessage(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`)
    .join('; ')
}

function toRequest(kind: Kind, raw: unknown): { request: NormalizedRequest; stream: boolean; includeUsage: boolean } {
  const parsed = kind === 'chat' ? ChatBody.safeParse(raw) : CompletionBody.safeParse(raw)
  if (!parsed.success) throw new RequestError(400, 'invalid_request', zodMessage(parsed.error))
  const b = parsed.data
  const input =
    'messages' in b
      ? {
          messages: b.messages.map(
            (m): ChatMessage => ({
              role: m.role === 'developer' ? 'system' : m.role,
              content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')
            })
          )
        }
      : { prompt: typeof b.prompt === 'string' ? b.prompt : (b.prompt[0] ?? '') }
  const maxTokens =
    ('max_completion_tokens' in b ? b.max_completion_tokens : undefined) ??
    b.max_tokens ??
    (kind === 'chat' ? EDGE_DEFAULTS.chatMaxTokens : EDGE_DEFAULTS.completionMaxTokens)
  let request: NormalizedRequest
  try {
    request = normalizeGenerateRequest({
      model: b.model,
      ...input,
      maxTokens,
      temperature: b.temperature ?? undefined,
      topP: b.top_p ?? undefined,
      topK: b.top_k ?? undefined,
      seed: b.seed ?? undefined,
      stop: b.stop == null ? undefined : typeof b.stop === 'string' ? [b.stop] : b.stop
    })
  } catch (err) {
    if (err instanceof InferenceInputError) {
      if (err.code === 'PROMPT_TOO_LARGE') throw new RequestError(413, 'prompt_too_large', err.message)
      throw new RequestError(400, 'invalid_request', err.message)
    }
    throw err
  }
  return { request, stream: b.stream === true, includeUsage: b.stream_options?.include_usage === true }
}

/** Maps what went wrong on the mesh to an OpenAI-shaped status and error. */
function meshError(err: unknown): RequestError {
  if (err instanceof RequestError) return err
  if (err instanceof EdgeError) {
    if (err.code === 'UNKNOWN_MODEL') return new RequestError(404, 'model_not_found', err.message)
    if (err.code === 'ALL_HOSTS_BUSY') return new RequestError(429, 'rate_limit_exceeded', err.message, 'rate_limit_error')
    return new RequestError(503, err.code === 'NO_HOST' ? 'no_host' : 'hosts_unavailable', err.message, 'server_error')
  }
  if (err instanceof PaymentError || (err instanceof HostError && (err.code === 'insufficient_quota' || err.code === 'payment_required'))) {
    const quota = err.code === 'insufficient_quota'
    return new RequestError(
      402,
      quota ? 'insufficient_quota' : 'payment_required',
      err.message,
      quota ? 'insufficient_quota' : 'invalid_request_error'
    )
  }
  if (err instanceof HostError) {
    if (err.code === 'too_large') return new RequestError(413, 'prompt_too_large', err.message)
    if (err.code === 'invalid_request') return new RequestError(400, 'invalid_request', err.message)
    if (err.code === 'busy' || err.code === 'rate_limited')
      return new RequestError(429, 'rate_limit_exceeded', err.message, 'rate_limit_error')
    return new RequestError(502, `host_${err.code}`, err.message, 'server_error')
  }
  return new RequestError(500, 'internal_error', 'internal error; see the node log', 'server_error')
}

function llmeshField(g: MeshGeneration) {
  return {
    host: g.host,
    model: g.model,
    cost: g.receipt.cost.toString(),
    receipt: Buffer.from(g.receiptBytes).toString('base64'),
    receiptJson: receiptJson(g.receipt)
  }
}

function usage(g: MeshGeneration) {
  const { promptTokens, completionTokens } = g.result
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
}

function finishReason(g: MeshGeneration): 'stop' | 'length' {
  return g.result.finish === 'length' ? 'length' : 'stop'
}

function meshHeaders(g: MeshGeneration): Record<string, string> {
  return {
    'x-llmesh-host': g.host,
    'x-llmesh-model': g.model,
    'x-llmesh-cost': g.receipt.cost.toString(),
    'x-llmesh-receipt': Buffer.from(g.receiptBytes).toString('base64')
  }
}

export function registerOpenAiRoutes(app: FastifyInstance, mesh: () => MeshInference | undefined): void {
  const edge = (reply: FastifyReply): MeshInference | undefined => {
    const m = mesh()
    if (m == null) {
      void reply.status(404).send(apiError('this node is not an edge (its roles lack `edge`)', 'invalid_request_error', 'not_an_edge'))
    }
    return m
  }

  const modelEntry = (m: { cid: string; name: string; hosts: string[] }, unique: boolean) => ({
    id: unique ? m.name : m.cid,
    object: 'model',
    created: 0,
    owned_by: 'llmesh',
    llmesh: { cid: m.cid, name: m.name, hosts: m.hosts }
  })

  app.get('/v1/models', async (_req, reply) => {
    const m = edge(reply)
    if (m == null) return reply
    const models = m.models()
    const counts = new Map<string, number>()
    for (const x of models) counts.set(x.name, (counts.get(x.name) ?? 0) + 1)
    return { object: 'list', data: models.map((x) => modelEntry(x, counts.get(x.name) === 1)) }
  })

  app.get('/mesh/hosts', async (_req, reply) => {
    const m = edge(reply)
    if (m == null) return reply
    return { hosts: m.hosts() }
  })

  app.get<{ Params: { model: string } }>('/v1/models/:model', async (req, reply) => {
    const m = edge(reply)
    if (m == null) return reply
    try {
      const found = m.resolve(req.params.model)
      if (found.hosts.length === 0) throw new EdgeError('UNKNOWN_MODEL', `no host on the mesh serves ${req.params.model}`)
      return { ...modelEntry(found, true), id: req.params.model }
    } catch (err) {
      const e = meshError(err)
      return reply.status(e.status).send(apiError(e.message, e.type, e.code))
    }
  })

  const handle = (kind: Kind) => async (req: FastifyRequest, reply: FastifyReply) => {
    const m = edge(reply)
    if (m == null) return reply
    let parsed: ReturnType<typeof toRequest>
    try {
      parsed = toRequest(kind, req.body)
    } catch (err) {
      const e = meshError(err)
      return reply.status(e.status).send(apiError(e.message, e.type, e.code))
    }
    const controller = new AbortController()
    // the client hanging up cancels the job on the host
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) controller.abort()
    })
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`
    const created = Math.floor(Date.now() / 1000)
    const model = parsed.request.model
    if (parsed.stream) return streamAnswer(m, parsed.request, parsed.includeUsage, kind, id, created, model, controller, reply)
    try {
      const g = await m.generate(parsed.request, { signal: controller.signal })
      void reply.headers(meshHeaders(g))
      const choice =
        kind === 'chat'
          ? { index: 0, message: { role: 'assistant', content: g.text, refusal: null }, logprobs: null, finish_reason: finishReason(g) }
          : { index: 0, text: g.text, logprobs: null, finish_reason: finishReason(g) }
      return {
        id,
        object: kind === 'chat' ? 'chat.completion' : 'text_completion',
        created,
        model,
        system_fingerprint: null,
        choices: [choice],
        usage: usage(g),
        llmesh: llmeshField(g)
      }
    } catch (err) {
      if (controller.signal.aborted) return reply
      const e = meshError(err)
      if (e.status >= 500) req.log.warn({ err }, 'inference request failed')
      return reply.status(e.status).send(apiError(e.message, e.type, e.code))
    }
  }

  app.post('/v1/chat/completions', handle('chat'))
  app.post('/v1/completions', handle('completion'))
}

async function streamAnswer(
  mesh: MeshInference,
  request: NormalizedRequest,
  includeUsage: boolean,
  kind: Kind,
  id: string,
  created: number,
  model: string,
  controller: AbortController,
  reply: FastifyReply
): Promise<FastifyReply> {
  const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'
  const chunk = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id, object, created, model, system_fingerprint: null, choices: choice == null ? [] : [choice], ...extra })}\n\n`
  const delta = (content: string) =>
    kind === 'chat'
      ? { index: 0, delta: { content }, logprobs: null, finish_reason: null }
      : { index: 0, text: content, logprobs: null, finish_reason: null }
  let started = false
  const start = (host: string): void => {
    if (started) return
    started = true
    reply.hijack()
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-llmesh-host': host
    })
    if (kind === 'chat')
      reply.raw.write(chunk({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }))
  }
  try {
    const g = await mesh.generate(request, {
      signal: controller.signal,
      onHost: start,
      onToken: (text) => reply.raw.write(chunk(delta(text)))
    })
    start(g.host)
    const last =
      kind === 'chat'
        ? { index: 0, delta: {}, logprobs: null, finish_reason: finishReason(g) }
        : { index: 0, text: '', logprobs: null, finish_reason: finishReason(g) }
    reply.raw.write(chunk(last, { llmesh: llmeshField(g) }))
    if (includeUsage) reply.raw.write(chunk(null, { usage: usage(g) }))
    reply.raw.end('data: [DONE]\n\n')
    return reply
  } catch (err) {
    if (controller.signal.aborted) {
      if (started) reply.raw.destroy()
      return reply
    }
    const e = meshError(err)
    if (!started) return reply.status(e.status).send(apiError(e.message, e.type, e.code))
    // the answer had begun: report the error in the stream, as OpenAI does
    reply.raw.end(`data: ${JSON.stringify(apiError(e.message, e.type, e.code))}\n\n`)
    return reply
  }
}
