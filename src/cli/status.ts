import type { NodeStatus } from '../node/index.ts'
import { callApi } from './api-client.ts'

/** `llmesh status`: fetches `/mesh/status` from a node's API and prints it for people (or as JSON). */
export async function runStatus(apiUrl: string, json: boolean, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const status = await callApi<NodeStatus>(apiUrl, '/mesh/status')
  if (json) {
    out.write(`${JSON.stringify(status, null, 2)}\n`)
    return
  }
  out.write(formatStatus(status))
}

export function formatStatus(s: NodeStatus): string {
  const rows: Array<[string, string]> = [
    ['peer id', s.peerId],
    ['version', s.version],
    ['roles', s.roles.join(', ') || '(none)'],
    ['uptime', formatDuration(s.uptimeSeconds)],
    ['api', s.apiUrl ?? '-'],
    ['height', s.height == null ? '(no chain)' : String(s.height)],
    ['connections', String(s.connections)]
  ]
  const lines = rows.map(([k, v]) => `${k.padEnd(12)} ${v}`)
  lines.push(`addresses (${s.addresses.length})`, ...s.addresses.map((a) => `  ${a}`))
  lines.push(`peers (${s.peers.length})`, ...s.peers.map((p) => `  ${p}`))
  return `${lines.join('\n')}\n`
}

function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return h > 0 ? `${h}h ${m}m ${s}s` : m > 0 ? `${m}m ${s}s` : `${s}s`
}
