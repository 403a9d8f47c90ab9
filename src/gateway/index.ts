/**
 * Gateway: the HTTP API of a node. Node API under `/mesh/*` (status, peers, DHT, chain) as JSON
 * and Prometheus metrics on `/metrics`; the OpenAI-compatible `/v1/*` arrives with inference.
 */

export { registerChainRoutes, toJson } from './chain-routes.ts'
export type { ApiErrorBody } from './errors.ts'
export { apiError } from './errors.ts'
export { createApiServer, listenApi } from './server.ts'
