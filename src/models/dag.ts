import type { Blockstore } from 'interface-blockstore'
import { exporter, type UnixFSEntry } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { equals } from 'uint8arrays/equals'
import { MODEL_LIMITS } from '../params/index.ts'
import { ModelDagError, ModelIntegrityError } from './errors.ts'

/**
 * Blocks of a model DAG: reading one with its hash checked, and walking a UnixFS file DAG to list
 * every block in it, within the bounds of `MODEL_LIMITS` (a fetched DAG comes from a stranger).
 */

const DAG_PB_CODE = 0x70

/** Reads one block by CID and checks that its bytes hash to it; the store's and the network's readers implement this. */
export type BlockReader = (cid: CID, options?: { signal?: AbortSignal }) => Promise<Uint8Array>

/** A key for a block in sets and maps: the blockstore keys blocks by multihash, so do we. */
export function blockKey(cid: CID): string {
  return Buffer.from(cid.multihash.bytes).toString('base64')
}

/** Refuses CIDs this store cannot hold: anything but raw or dag-pb blocks hashed with sha2-256. */
export function checkBlockCid(cid: CID, root: CID): void {
  if (cid.multihash.code !== sha256.code) {
    throw new ModelDagError(
      'MODEL_DAG_UNSUPPORTED',
      root.toString(),
      `block ${cid} of model ${root} is hashed with multihash 0x${cid.multihash.code.toString(16)}, not sha2-256`,
      'models are stored as sha2-256 UnixFS DAGs; import the file itself with `llmesh model add`'
    )
  }
  if (cid.code !== raw.code && cid.code !== DAG_PB_CODE) {
    throw new ModelDagError(
      'MODEL_DAG_UNSUPPORTED',
      root.toString(),
      `block ${cid} of model ${root} has codec 0x${cid.code.toString(16)}, not raw or dag-pb`,
      'a model must be a UnixFS file; import the file itself with `llmesh model add`'
    )
  }
}

/** Checks that `bytes` are the block `cid` names. */
export async function verifyBlock(cid: CID, bytes: Uint8Array): Promise<boolean> {
  if (cid.multihash.code !== sha256.code) return false
  const digest = await sha256.digest(bytes)
  return equals(digest.bytes, cid.multihash.bytes)
}

/** True when `err` is the blockstore's "no such block" error. */
export function isBlockNotFound(err: unknown): boolean {
  return err instanceof Error && err.name === 'NotFoundError'
}

/** A reader of `blocks` that checks every block against its CID and the block size bound. */
export function localBlockReader(blocks: Pick<Blockstore, 'get'>): BlockReader {
  return async (cid, options) => {
    const parts: Uint8Array[] = []
    let size = 0
    try {
      for await (const part of blocks.get(cid, options)) {
        size += part.byteLength
        if (size > MODEL_LIMITS.maxBlockBytes) {
          throw new ModelIntegrityError('MODEL_CORRUPT', `block ${cid} is larger than ${MODEL_LIMITS.maxBlockBytes} bytes`, {
            hint: 'the block store is damaged; remove the model and add or fetch it again'
          })
        }
        parts.push(part)
      }
    } catch (err) {
      if (isBlockNotFound(err)) {
        throw new ModelIntegrityError('MODEL_CORRUPT', `block ${cid} is missing from the model store`, {
          hint: 'the block store is damaged; remove the model and add or fetch it again',
          cause: err
        })
      }
      throw err
    }
    const bytes = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, size)
    if (!(await verifyBlock(cid, bytes))) {
      throw new ModelIntegrityError('MODEL_CORRUPT', `block ${cid} in the model store does not hash to its CID`, {
        hint: 'the block store is damaged; remove the model and add or fetch it again'
      })
    }
    return bytes
  }
}

/** The reader as the UnixFS exporter wants it (a blockstore's `get`). */
export function exporterStorage(read: BlockReader): Pick<Blockstore, 'get'> {
  return {
    get: async function* (cid: CID, options?: { signal?: AbortSignal }) {
      yield await read(cid, options)
    }
  }
}

export interface FileDagRoot {
  /** Bytes of the file the DAG holds, as its root declares. */
  fileSize: number
}

/**
 * Decodes one block of a file DAG: a raw leaf, or a dag-pb UnixFS `file`/`raw` node. Anything else
 * (a directory, a symlink, a non-UnixFS node) is refused.
 */
async function decodeFileNode(
  storage: Pick<Blockstore, 'get'>,
  cid: CID,
  root: CID,
  signal: AbortSignal | undefined
): Promise<{ fileSize: bigint; links: CID[]; blockSizes: bigint[] }> {
  let entry: UnixFSEntry
  try {
    entry = await exporter(cid, storage, { signal })
  } catch (err) {
    if (err instanceof Error && err.name === 'NotUnixFSError') {
      throw new ModelDagError(
        'MODEL_DAG_INVALID',
        root.toString(),
        `block ${cid} of model ${root} is not a UnixFS node (${err.message})`,
        'a model must be a single UnixFS file'
      )
    }
    throw err
  }
  if (entry.type === 'raw') return { fileSize: entry.size, links: [], blockSizes: [] }
  const unixfsType = entry.type === 'file' ? entry.unixfs.type : entry.type
  if (entry.type !== 'file' || (unixfsType !== 'file' && unixfsType !== 'raw')) {
    throw new ModelDagError(
      'MODEL_DAG_UNSUPPORTED',
      root.toString(),
      `block ${cid} of model ${root} is a UnixFS ${unixfsType}, not a file`,
      'give the CID of the model file itself'
    )
  }
  return { fileSize: entry.size, links: entry.node.Links.map((link) => link.Hash), blockSizes: entry.unixfs.blockSizes }
}

export interface FileDagRoot {
  /** Bytes of the file the DAG holds, as its root declares. */
  fileSize: number
}

/** Reads the root of a model DAG and checks that it is a UnixFS file within the size bound. */
export async function readFileRoot(read: BlockReader, root: CID, options: { signal?: AbortSignal } = {}): Promise<FileDagRoot> {
  checkBlockCid(root, root)
  const { fileSize } = await decodeFileNode(exporterStorage(read), root, root, options.signal)
  if (fileSize > BigInt(MODEL_LIMITS.maxModelBytes)) {
    throw new ModelDagError(
      'MODEL_DAG_TOO_LARGE',
      root.toString(),
      `model ${root} declares ${fileSize} bytes, more than the limit of ${MODEL_LIMITS.maxModelBytes}`,
      'models larger than MODEL_LIMITS.maxModelBytes are refused'
    )
  }
  return { fileSize: Number(fileSize) }
}

export interface WalkOptions {
  signal?: AbortSignal
  /** Blocks whose reading fails with `MODEL_CORRUPT` are yielded but not descended into (to remove a damaged model). */
  skipUnreadable?: boolean
  /** Filled with the file bytes of each raw leaf (block key → bytes) as their parents declare, for progress reports. */
  leafSizes?: Map<string, number>
}

/**
 * Every block of the UnixFS file DAG under `root`, depth first, each once: internal nodes are
 * read (through `read`) to find their links, raw leaves are yielded without being read. A node is
 * yielded before its children, so a caller fetching blocks learns the links as it goes.
 */
export async function* walkFileDag(read: BlockReader, root: CID, options: WalkOptions = {}): AsyncGenerator<CID> {
  const seen = new Set<string>()
  const storage = exporterStorage(read)
  const stack: Array<{ cid: CID; depth: number }> = [{ cid: root, depth: 0 }]
  while (stack.length > 0) {
    const { cid, depth } = stack.pop() as { cid: CID; depth: number }
    const key = blockKey(cid)
    if (seen.has(key)) continue
    seen.add(key)
    if (seen.size > MODEL_LIMITS.maxModelBlocks) {
      throw new ModelDagError(
        'MODEL_DAG_TOO_LARGE',
        root.toString(),
        `model ${root} has more than ${MODEL_LIMITS.maxModelBlocks} blocks`,
        'a DAG this large is refused'
      )
    }
    checkBlockCid(cid, root)
    yield cid
    if (cid.code === raw.code) continue
    if (depth >= MODEL_LIMITS.maxDagDepth) {
      throw new ModelDagError(
        'MODEL_DAG_INVALID',
        root.toString(),
        `model ${root} is deeper than ${MODEL_LIMITS.maxDagDepth} levels`,
        'a DAG this deep is refused'
      )
    }
    let links: CID[]
    let blockSizes: bigint[]
    try {
      ;({ links, blockSizes } = await decodeFileNode(storage, cid, root, options.signal))
    } catch (err) {
      if (options.skipUnreadable === true && err instanceof ModelIntegrityError) continue
      throw err
    }
    if (links.length > MODEL_LIMITS.maxLinksPerNode) {
      throw new ModelDagError(
        'MODEL_DAG_INVALID',
        root.toString(),
        `block ${cid} of model ${root} has ${links.length} links, more than ${MODEL_LIMITS.maxLinksPerNode}`,
        'a DAG this wide is refused'
      )
    }
    if (options.leafSizes != null && blockSizes.length === links.length) {
      for (const [i, link] of links.entries()) {
        if (link.code === raw.code) options.leafSizes.set(blockKey(link), Number(blockSizes[i]))
      }
    }
    // reversed so that the stack pops them in file order
    for (let i = links.length - 1; i >= 0; i--) stack.push({ cid: links[i] as CID, depth: depth + 1 })
  }
}
