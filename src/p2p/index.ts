/**
 * P2P: the libp2p node (TCP, noise, yamux, identify, ping, kad-dht, gossipsub) and the services
 * that run on it: bootstrap, mesh growth through DHT discovery, per-peer gossip records
 * (`PeerRecords`) and presence announcements on them.
 */
export { BootstrapUnreachableError, connectBootstrapPeers } from './bootstrap.ts'
export type { MeshLibp2p, MeshServices, P2pInit } from './create-libp2p.ts'
export { createMeshLibp2p } from './create-libp2p.ts'
export { MeshGrowth } from './mesh-growth.ts'
export type { KnownRecord, PeerRecordHeader, PeerRecordsComponents, PeerRecordsInit, RecordResult } from './peer-records.ts'
export { PeerRecords } from './peer-records.ts'
export type { KnownPeer, Presence, PresenceRejectReason } from './presence.ts'
export { decodePresence, PresenceService } from './presence.ts'
