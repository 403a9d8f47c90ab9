import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { AbstractMultiaddrConnection } from '@libp2p/utils'

/**
 * Two fixes to the libp2p stack under every connection (the mesh's inference sessions, the chain's
 * gossip, bitswap), installed when this module is imported (by create-libp2p.ts). Each was a cost
 * per message on every connection; docs/performance.md (Gateway, 2026-11-26) has the counts.
 */

/** A message to a connection larger than this is passed on as its chunks, not copied into one. */
export const MAX_JOINED_BYTES = 4 * 1024 * 1024

type SendInput = Parameters<AbstractMultiaddrConnection['send']>[0]
export const originalConnectionSend = AbstractMultiaddrConnection.prototype.send

/**
 * 1. One socket write per message. Noise hands each encrypted message to the connection as a list
 * of two chunks (the 2-byte length, then the ciphertext), and `@libp2p/tcp` 11.0.28 writes the
 * chunks of a list one by one: two `write` system calls per message. This joins a message's chunks
 * before it is queued, so the socket gets the same bytes in one write. (A message over
 * MAX_JOINED_BYTES keeps its chunks: one copy of it would cost more than the calls it saves.)
 */
export function sendJoined(this: AbstractMultiaddrConnection, data: SendInput): boolean {
  // a list of one chunk gives that chunk back, uncopied
  if (!(data instanceof Uint8Array) && data.byteLength <= MAX_JOINED_BYTES) data = data.subarray()
  return originalConnectionSend.call(this, data)
}

AbstractMultiaddrConnection.prototype.send = sendJoined

interface WindowFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

export const originalSendWindowUpdate = YamuxStream.prototype.sendWindowUpdate

/**
 * 2. Window updates when half the receive window is used, not after every data frame.
 * `@chainsafe/libp2p-yamux` 8.0.1 answers every data frame it receives with a window update: one
 * more message each way (encrypted, framed, written) for every message of a request/response
 * protocol. The yamux spec leaves the timing to the receiver, and go-yamux and hashicorp/yamux
 * send an update only once the unannounced credit reaches half the window, so the sender always
 * keeps at least half a window to send into. This does the same; the SYN/ACK of a new stream, a
 * paused stream and the growth of the window are left to the library.
 */
export function sendWindowUpdateAtHalf(this: YamuxStream): void {
  const self = this as unknown as WindowFields
  if (self.state === StreamState.Established && self.recvWindow - self.recvWindowCapacity < self.recvWindow / 2) return
  originalSendWindowUpdate.call(this)
}

YamuxStream.prototype.sendWindowUpdate = sendWindowUpdateAtHalf
