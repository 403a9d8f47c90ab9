import { hash } from 'node:crypto'
import { CborWriter, encodedKey, MAJOR_MAP, textLength, uintLength } from '../codec/wire.ts'

/**
 * Batched receipts: a host that finishes several jobs at once signs one Merkle root over their
 * receipt bodies instead of one body each, and each receipt carries its inclusion proof. The tree
 * is RFC 9162's (Certificate Transparency v2): leaf hash SHA-256(0x00 || body), node hash
 * SHA-256(0x01 || left || right), the left subtree of n leaves the largest power of two below n.
 * The signature covers the root with the leaf count under a domain of its own (see
 * {@link batchMessage}), so it can never be taken for the signature of a single receipt's body.
 */

/** Most receipts under one signature (the proof of each is at most log2 of it, 10 hashes). */
export const MAX_RECEIPT_BATCH = 1024
/** Longest proof a receipt may carry: the depth of a tree of {@link MAX_RECEIPT_BATCH} leaves. */
export const MAX_PROOF_HASHES = 10
const HASH_BYTES = 32
const LEAF_PREFIX = 0
const NODE_PREFIX = 1
const BATCH_DOMAIN = 'llmesh/receipt-batch/1'

function sha256(data: Uint8Array): Uint8Array {
  const digest = hash('sha256', data, 'buffer')
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
}

export function leafHash(body: Uint8Array): Uint8Array {
  const data = new Uint8Array(1 + body.byteLength)
  data[0] = LEAF_PREFIX
  data.set(body, 1)
  return sha256(data)
}

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const data = new Uint8Array(1 + 2 * HASH_BYTES)
  data[0] = NODE_PREFIX
  data.set(left, 1)
  data.set(right, 1 + HASH_BYTES)
  return sha256(data)
}

/** The largest power of two strictly below n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

/** The root of the tree over `leaves` (at least one), and each leaf's inclusion proof (siblings from the leaf up). */
export function merkleTree(leaves: Uint8Array[]): { root: Uint8Array; proofs: Uint8Array[][] } {
  if (leaves.length === 0) throw new RangeError('a Merkle tree needs a leaf')
  const proofs: Uint8Array[][] = leaves.map(() => [])
  const subtree = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) return leaves[lo] as Uint8Array
    const mid = lo + splitPoint(hi - lo)
    const left = subtree(lo, mid)
    const right = subtree(mid, hi)
    for (let i = lo; i < mid; i++) proofs[i]?.push(right)
    for (let i = mid; i < hi; i++) proofs[i]?.push(left)
    return nodeHash(left, right)
  }
  return { root: subtree(0, leaves.length), proofs }
}

/**
 * The root that `leaf` at `index` of a tree of `count` leaves and its proof `path` lead to, by RFC
 * 9162 §2.1.3.2; null when the path does not fit the index and count (too short or too long).
 */
export function rootFromProof(leaf: Uint8Array, index: number, count: number, path: Uint8Array[]): Uint8Array | null {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(count) && index >= 0 && index < count)) return null
  let fn = index
  let sn = count - 1
  let r = leaf
  for (const p of path) {
    if (p.byteLength !== HASH_BYTES || sn === 0) return null
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2)
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      r = nodeHash(r, p)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 ? r : null
}

const K_N = encodedKey('n')
const K_ROOT = encodedKey('root')
const K_DOMAIN = encodedKey('domain')

/**
 * What the host signs for a batch: the canonical DAG-CBOR of
 * `{n: count, root, domain: "llmesh/receipt-batch/1"}` (a map of three fields; a receipt body is a
 * map of thirteen, so neither can pass for the other).
 */
export function batchMessage(root: Uint8Array, count: number): Uint8Array {
  const w = new CborWriter(
    1 + K_N.byteLength + uintLength(count) + K_ROOT.byteLength + 2 + root.byteLength + K_DOMAIN.byteLength + textLength(BATCH_DOMAIN)
  )
  w.head(MAJOR_MAP, 3)
  w.raw(K_N)
  w.uint(count)
  w.raw(K_ROOT)
  w.bytes(root)
  w.raw(K_DOMAIN)
  w.text(BATCH_DOMAIN)
  return w.done()
}
