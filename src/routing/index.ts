/**
 * Routing: which host an edge sends an inference request to. The `Router` ranks candidate hosts
 * by expected cost (an EWMA of the latency this edge measured, scaled by the load and queue a
 * host advertises and by the requests this edge has in flight to it), shuffles near-equal hosts
 * so they share the work, and puts hosts that keep failing last for a doubling pause. It does no
 * I/O: the clock and the random source are arguments, so the node owns the effects and tests can
 * replay any ranking.
 */
export { RouterConfigError } from './errors.ts'
export type { HostCandidate, HostStats, RouterInit, RoutingSettings } from './router.ts'
export { ROUTING_DEFAULTS, Router } from './router.ts'
