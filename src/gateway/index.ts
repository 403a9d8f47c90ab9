/**
 * Gateway: the HTTP API of a node. Node API under `/mesh/*` (status, peers, DHT) as JSON and
 * Prometheus metrics on `/metrics`; the OpenAI-compatible `/v1/*` arrives with inference.
 */

export type { ApiErrorBody } from './server.ts'
export { apiError, createApiServer, listenApi } from './server.ts'
