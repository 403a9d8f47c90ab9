import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import type { MeshLibp2p } from '../p2p/index.ts'

/**
 * The node's Prometheus metrics, in a registry of its own (no global state: tests run several
 * nodes in one process). Connection and stream gauges are read from libp2p at scrape time.
 */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly httpRequests = new Counter({
    name: 'llmesh_http_requests_total',
    help: 'HTTP requests served by the node API',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry]
  })
  readonly gossipReceived = new Counter({
    name: 'llmesh_gossip_messages_received_total',
    help: 'Gossip messages received, by topic and validation result',
    labelNames: ['topic', 'result'] as const,
    registers: [this.registry]
  })
  readonly gossipPublished = new Counter({
    name: 'llmesh_gossip_messages_published_total',
    help: 'Gossip messages this node published, by topic',
    labelNames: ['topic'] as const,
    registers: [this.registry]
  })
  readonly rejectedMessages = new Counter({
    name: 'llmesh_p2p_rejected_messages_total',
    help: 'Protocol messages from peers rejected as malformed or oversized, by protocol and reason',
    labelNames: ['protocol', 'reason'] as const,
    registers: [this.registry]
  })

  readonly chainHeight = new Gauge({
    name: 'llmesh_chain_height',
    help: 'Height of the last committed block',
    registers: [this.registry]
  })
  readonly committedTxs = new Counter({
    name: 'llmesh_chain_committed_txs_total',
    help: 'Transactions in blocks this node committed',
    registers: [this.registry]
  })

  readonly hostJobs = new Counter({
    name: 'llmesh_host_jobs_total',
    help: 'Inference jobs this host answered, by outcome (done, or the error code sent back)',
    labelNames: ['outcome'] as const,
    registers: [this.registry]
  })

  constructor(libp2p: MeshLibp2p) {
    collectDefaultMetrics({ register: this.registry, prefix: 'llmesh_process_' })
    new Gauge({
      name: 'llmesh_p2p_connections',
      help: 'Open libp2p connections',
      registers: [this.registry],
      collect() {
        this.set(libp2p.getConnections().length)
      }
    })
    new Gauge({
      name: 'llmesh_p2p_streams',
      help: 'Open libp2p streams over all connections',
      registers: [this.registry],
      collect() {
        this.set(libp2p.getConnections().reduce((n, c) => n + c.streams.length, 0))
      }
    })
    new Gauge({
      name: 'llmesh_p2p_peers',
      help: 'Distinct peers with an open connection',
      registers: [this.registry],
      collect() {
        this.set(new Set(libp2p.getConnections().map((c) => c.remotePeer.toString())).size)
      }
    })
  }
}
