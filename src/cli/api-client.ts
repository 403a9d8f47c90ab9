import { LlmeshError } from '../errors/index.ts'
import { DEFAULT_API_PORT } from '../params/index.ts'

export class ApiUnreachableError extends LlmeshError<'API_UNREACHABLE'> {}
export class ApiRequestError extends LlmeshError<'API_ERROR'> {}

/** The node API to talk to: `--api`, else the one in `--home`'s config, else the default port. */
export async function resolveApi(o: { api?: string; home?: string }): Promise<string> {
  if (o.api != null) return o.api
  if (o.home != null) {
    const { homePaths, loadConfig } = await import('../node/index.ts')
    const config = await loadConfig(homePaths(o.home).config)
    const host = config.api.host === '0.0.0.0' ? '127.0.0.1' : config.api.host
    return `http://${host.includes(':') ? `[${host}]` : host}:${config.api.port}`
  }
  return `http://127.0.0.1:${DEFAULT_API_PORT}`
}

/** Calls the node API; a network failure or an error body becomes one clear error line. */
export async function callApi<T>(api: string, path: string, init?: { method?: string; body?: unknown }): Promise<T> {
  let res: Response
  try {
    res = await fetch(new URL(path, api), {
      method: init?.method ?? 'GET',
      headers: init?.body == null ? undefined : { 'content-type': 'application/json' },
      body: init?.body == null ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(10_000)
    })
  } catch (err) {
    throw new ApiUnreachableError('API_UNREACHABLE', `no node answered at ${api} (${(err as Error).message})`, {
      hint: 'is the node running? pass its API with --api http://127.0.0.1:PORT or its --home',
      cause: err
    })
  }
  const body = (await res.json().catch(() => ({}))) as { error?: { message?: string; code?: string } }
  if (!res.ok) {
    throw new ApiRequestError(
      'API_ERROR',
      `${path}: ${body.error?.message ?? `HTTP ${res.status}`}${body.error?.code == null ? '' : ` (${body.error.code})`}`
    )
  }
  return body as T
}
