import { createHash, randomBytes } from 'node:crypto'
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { exporter } from 'ipfs-unixfs-exporter'
import { importFile } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { isSystemError } from '../errors/index.ts'
import { INFERENCE_LIMITS, MODEL_DEFAULTS, MODEL_LIMITS } from '../params/index.ts'
import {
  type BlockReader,
  blockKey,
  checkBlockCid,
  exporterStorage,
  localBlockReader,
  readFileRoot,
  verifyBlock,
  walkFileDag
} from './dag.ts'
import {
  ModelDagError,
  ModelFileError,
  ModelInputError,
  ModelIntegrityError,
  ModelNotStoredError,
  ModelStoreStoppedError
} from './errors.ts'
import { hasGgufMagic } from './gguf.ts'
import { modelImporterOptions } from './import-options.ts'
import { ModelIndexFile, type StoredModel } from './model-index.ts'
import { RwLock } from './rw-lock.ts'
import { lockStoreDir } from './store-lock.ts'

export interface ModelStoreInit {
  /** The store's directory, `<home>/models` (see {@link modelStoreDir}). */
  dir: string
  /** Largest model accepted; `MODEL_LIMITS.maxModelBytes` by default. */
  maxModelBytes?: number
  /** Wall clock in ms, for `addedAt`; passed in so tests can drive it. */
  now?: () => number
  /** Longest wait for another process's change to the store (`STORE_LOCK_DEFAULTS.waitMs` by default). */
  lockWaitMs?: number
  /** Called when a change has to wait for another process holding the store's lock (its pid, if known). */
  onLockWait?: (holder: number | undefined) => void
}

export interface ModelStorePaths {
  dir: string
  /** Blocks, one file each, named by multihash (blockstore-fs). */
  blocks: string
  /** Models materialised as plain GGUF files for the inference engine. */
  files: string
  index: string
  /** Held by the one process changing the store (see `lockStoreDir`). */
  lock: string
}

export interface AddModelOptions {
  /** A name for people; the file's base name by default. */
  name?: string
  signal?: AbortSignal
  onProgress?: (progress: { bytesRead: number; totalBytes: number }) => void
}

export interface ExportResult {
  path: string
  size: number
  sha256: string
}

export interface RemoveResult {
  cid: string
  /** Blocks deleted from disk. */
  blocksDeleted: number
  /** Blocks of the model kept because another stored model uses them too. */
  blocksKept: number
}

export interface FetchProgress {
  /** Blocks of the DAG seen so far (the total is known only at the end). */
  blocksSeen: number
  /** Blocks that were already in the store. */
  blocksPresent: number
  /** Blocks received from peers. */
  blocksFetched: number
  bytesFetched: number
  /** File bytes in the leaves that were already in the store (as their parents declare). */
  bytesPresent: number
  /** Bytes of the file, as the root declares. */
  fileSize: number
}

export interface AdoptOptions {
  name?: string
  signal?: AbortSignal
  /** Blocks requested from `fetchBlock` at once. */
  concurrency?: number
  onProgress?: (progress: FetchProgress) => void
}

/** The directory of the model store of the node home `home`. */
export function modelStoreDir(home: string): string {
  return join(resolve(home), 'models')
}

/** Parses a model CID given by a user or a peer; CIDv0 is read as the same root in CIDv1. */
export function parseModelCid(input: string | CID): CID {
  const asCid = CID.asCID(input)
  if (asCid != null) return asCid.toV1()
  const text = String(input)
  if (text.length === 0 || Buffer.byteLength(text) > INFERENCE_LIMITS.maxModelIdBytes) {
    throw new ModelInputError('INVALID_CID', `model CID of ${Buffer.byteLength(text)} bytes is not a CID`, {
      hint: 'a model CID looks like bafybei…; `llmesh model ls` shows the stored ones'
    })
  }
  try {
    return CID.parse(text).toV1()
  } catch (err) {
    throw new ModelInputError('INVALID_CID', `"${text}" is not a CID`, {
      hint: 'a model CID looks like bafybei…; `llmesh model ls` shows the stored ones',
      cause: err
    })
  }
}

function checkModelName(name: string): string {
  const trimmed = name.trim()
  const bytes = Buffer.byteLength(trimmed)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  if (bytes === 0 || bytes > MODEL_LIMITS.maxModelNameBytes || /[\u0000-\u001f\u007f]/.test(trimmed)) {
    throw new ModelInputError('INVALID_MODEL_NAME', `model name of ${bytes} bytes is not valid`, {
      hint: `give a name of 1 to ${MODEL_LIMITS.maxModelNameBytes} bytes without control characters`
    })
  }
  return trimmed
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let offset = 0; offset < chunk.byteLength; ) {
    const { bytesWritten } = await fh.write(chunk, offset, chunk.byteLength - offset)
    offset += bytesWritten
  }
}

/**
 * The content-addressed model store of a node: GGUF files imported as IPFS UnixFS DAGs into a
 * blockstore on disk (`blocks/`), a durable list of the models (`index.json`), and plain-file
 * copies for the inference engine (`files/`). Versions of a model share the chunks they have in
 * common; removing one keeps what another still uses. Every block read is checked against its CID
 * and every file written out against the SHA-256 recorded when the model came in.
 *
 * Locking: adds, fetches, removals and gc run one at a time; exports run alongside adds and each
 * other, but not alongside a removal or gc (the only operations that delete blocks). "One at a
 * time" holds across processes too (a lock file, `store.lock`): each change takes it and reads
 * `index.json` again first, so a node and `llmesh model add` can share a store; `refresh()` picks
 * up what another process listed.
 */
export class ModelStore {
  readonly paths: ModelStorePaths
  private readonly maxModelBytes: number
  private readonly now: () => number
  private readonly indexFile: ModelIndexFile
  private readonly models = new Map<string, StoredModel>()
  private readonly mutations = new RwLock()
  private readonly deletions = new RwLock()
  private readonly lockWaitMs: number | undefined
  private readonly onLockWait: ((holder: number | undefined) => void) | undefined
  private blockstore: FsBlockstore | undefined
  private running = false
  /** What `index.json` looked like when it was last read or written (mtime, size, inode). */
  private indexSignature = ''
  private refreshing: Promise<boolean> | undefined

  constructor(init: ModelStoreInit) {
    const dir = resolve(init.dir)
    this.paths = {
      dir,
      blocks: join(dir, 'blocks'),
      files: join(dir, 'files'),
      index: join(dir, 'index.json'),
      lock: join(dir, 'store.lock')
    }
    this.maxModelBytes = Math.min(init.maxModelBytes ?? MODEL_LIMITS.maxModelBytes, MODEL_LIMITS.maxModelBytes)
    this.now = init.now ?? Date.now
    this.indexFile = new ModelIndexFile(this.paths.index)
    this.lockWaitMs = init.lockWaitMs
    this.onLockWait = init.onLockWait
  }

  async start(): Promise<void> {
    if (this.running) return
    await mkdir(this.paths.files, { recursive: true, mode: 0o755 })
    await this.reloadIndex()
    const blockstore = new FsBlockstore(this.paths.blocks)
    await blockstore.open()
    this.blockstore = blockstore
    this.running = true
  }

  /** Waits for running operations to finish; later calls fail with `MODEL_STORE_STOPPED`. */
  async stop(): Promise<void> {
    await this.mutations.write(() =>
      this.deletions.write(async () => {
        if (!this.running) return
        this.running = false
        await this.blockstore?.close()
      })
    )
  }

  /**
   * Reads `index.json` again if it changed since this store last read or wrote it (another
   * process, e.g. `llmesh model add` beside a running node, listed or removed a model). Cheap when
   * nothing changed (one `stat`). Returns true when the list was reloaded.
   */
  async refresh(): Promise<boolean> {
    this.assertRunning()
    this.refreshing ??= (async () => {
      try {
        if ((await this.signatureOfIndex()) === this.indexSignature) return false
        await this.reloadIndex()
        return true
      } finally {
        this.refreshing = undefined
      }
    })()
    return this.refreshing
  }

  /** The stored models, oldest first. */
  list(): StoredModel[] {
    return [...this.models.values()].map((m) => ({ ...m }))
  }

  /** The stored model with this CID, or undefined. Throws `INVALID_CID` for something that is not a CID. */
  get(cid: string | CID): StoredModel | undefined {
    const model = this.models.get(parseModelCid(cid).toString())
    return model == null ? undefined : { ...model }
  }

  /** True when the model is stored; false for anything else, a malformed CID included. */
  has(cid: string | CID): boolean {
    try {
      return this.models.has(parseModelCid(cid).toString())
    } catch {
      return false
    }
  }

  /**
   * Imports a GGUF file (streamed, never read whole) and lists it. Returns the stored model; the
   * same bytes always give the same CID, and adding a stored model again returns it unchanged.
   * A file that is missing, too large or not GGUF is refused before anything is written; an
   * import that fails halfway removes the blocks it had written.
   */
  async add(filePath: string, options: AddModelOptions = {}): Promise<StoredModel> {
    this.assertRunning()
    const path = resolve(filePath)
    const name = checkModelName(options.name ?? basename(path))
    let fh: FileHandle
    try {
      fh = await open(path, 'r')
    } catch (err) {
      if (isSystemError(err, 'ENOENT') || isSystemError(err, 'ENOTDIR')) {
        throw new ModelFileError('MODEL_FILE_MISSING', path, `${path} does not exist`, 'check the path of the model file', err)
      }
      throw err
    }
    try {
      const st = await fh.stat()
      if (!st.isFile()) {
        throw new ModelFileError('MODEL_FILE_MISSING', path, `${path} is not a regular file`, 'give the path of a GGUF model file')
      }
      if (st.size > this.maxModelBytes) {
        throw new ModelFileError(
          'MODEL_TOO_LARGE',
          path,
          `${path} is ${st.size} bytes, more than the limit of ${this.maxModelBytes}`,
          'use a smaller (more quantized) model file'
        )
      }
      const head = Buffer.alloc(4)
      const { bytesRead } = await fh.read(head, 0, head.byteLength, 0)
      if (!hasGgufMagic(head.subarray(0, bytesRead))) {
        throw new ModelFileError(
          'MODEL_NOT_GGUF',
          path,
          `${path} is not a GGUF model (it does not start with the GGUF magic)`,
          'give a .gguf file; convert other formats with llama.cpp (convert_hf_to_gguf.py)'
        )
      }
      return await this.exclusive(options.signal, async () => {
        if (this.models.size >= MODEL_LIMITS.maxStoredModels) {
          throw new ModelInputError('MODEL_STORE_FULL', `the model store already holds ${this.models.size} models`, {
            hint: 'remove models you no longer serve (`llmesh model rm`)'
          })
        }
        return this.importOpenFile(fh, st.size, path, name, options)
      })
    } finally {
      await fh.close()
    }
  }

  /**
   * Removes a model: unlists it, then deletes its blocks that no other stored model uses, and its
   * materialised file. If another model's DAG cannot be read, nothing is removed (its blocks
   * could not be told apart).
   */
  async remove(cid: string | CID): Promise<RemoveResult> {
    const root = parseModelCid(cid)
    this.assertRunning()
    return this.exclusive(undefined, () =>
      this.deletions.write(async () => {
        this.assertRunning()
        const model = this.require(root)
        const keep = await this.blocksOfModels([...this.models.values()].filter((m) => m.cid !== model.cid))
        const own: CID[] = []
        for await (const block of walkFileDag(this.reader, root, { skipUnreadable: true })) own.push(block)
        await this.persist([...this.models.values()].filter((m) => m.cid !== model.cid))
        this.models.delete(model.cid)
        let blocksDeleted = 0
        let blocksKept = 0
        for (const block of own) {
          if (keep.has(blockKey(block))) {
            blocksKept++
          } else {
            await this.blocks.delete(block)
            blocksDeleted++
          }
        }
        await rm(this.filePath(model.cid), { force: true })
        return { cid: model.cid, blocksDeleted, blocksKept }
      })
    )
  }

  /**
   * Writes the model back as a file at `outPath` (replacing it atomically), byte-identical to
   * what was added: every block is checked against its CID and the whole file against its SHA-256.
   */
  async export(cid: string | CID, outPath: string, options: { signal?: AbortSignal } = {}): Promise<ExportResult> {
    const root = parseModelCid(cid)
    this.assertRunning()
    return this.deletions.read(async () => {
      this.assertRunning()
      return this.writeModelFile(this.require(root), resolve(outPath), 0o644, options.signal)
    })
  }

  /**
   * A local GGUF file of the model for the inference engine, written (and verified) on first use
   * under `files/`. Later calls return it after checking its size; `verify: true` rehashes it
   * and writes it again if it was altered.
   */
  async path(cid: string | CID, options: { verify?: boolean; signal?: AbortSignal } = {}): Promise<string> {
    const root = parseModelCid(cid)
    this.assertRunning()
    return this.deletions.read(async () => {
      this.assertRunning()
      const model = this.require(root)
      const file = this.filePath(model.cid)
      const st = await stat(file).catch((err: unknown) => {
        if (isSystemError(err, 'ENOENT')) return undefined
        throw err
      })
      if (st?.isFile() === true && st.size === model.size) {
        if (options.verify !== true || (await sha256OfFile(file, options.signal)) === model.sha256) return file
      }
      await this.writeModelFile(model, file, 0o444, options.signal)
      return file
    })
  }

  /**
   * Deletes blocks no stored model uses and files of models no longer stored: what a crash
   * between writing blocks and listing a model (or unlisting and deleting) leaves behind.
   */
  async gc(): Promise<{ blocksDeleted: number; filesDeleted: number }> {
    this.assertRunning()
    return this.exclusive(undefined, () =>
      this.deletions.write(async () => {
        this.assertRunning()
        const keep = await this.blocksOfModels([...this.models.values()])
        const orphans: CID[] = []
        for await (const { cid } of this.blocks.getAll()) if (!keep.has(blockKey(cid))) orphans.push(cid)
        for (const cid of orphans) await this.blocks.delete(cid)
        let filesDeleted = 0
        for (const entry of await readdir(this.paths.files)) {
          if (this.models.has(entry.replace(/\.gguf$/, '')) && entry.endsWith('.gguf')) continue
          await rm(join(this.paths.files, entry), { force: true })
          filesDeleted++
        }
        return { blocksDeleted: orphans.length, filesDeleted }
      })
    )
  }

  /** Reads a stored block by CID (hash checked), for serving it to peers; undefined if absent. */
  async readBlock(cid: CID, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    this.assertRunning()
    if (!(await this.blocks.has(cid, options))) return undefined
    return this.reader(cid, options)
  }

  /** True when the block is in the blockstore (whole or part of any model). */
  async hasBlock(cid: CID): Promise<boolean> {
    this.assertRunning()
    return this.blocks.has(cid)
  }

  /**
   * Stores the model DAG under `root`, taking the blocks this store lacks from `fetchBlock` (a
   * peer), checking each against its CID and the DAG against the bounds of `MODEL_LIMITS`, and
   * lists it once the whole file reads back with the size its root declares. On failure the
   * blocks it had written are removed again.
   */
  async adopt(root: string | CID, fetchBlock: BlockReader, options: AdoptOptions = {}): Promise<StoredModel> {
    const rootCid = parseModelCid(root)
    const name = checkModelName(options.name ?? rootCid.toString())
    this.assertRunning()
    return this.exclusive(options.signal, async () => {
      const existing = this.models.get(rootCid.toString())
      if (existing != null) return { ...existing }
      if (this.models.size >= MODEL_LIMITS.maxStoredModels) {
        throw new ModelInputError('MODEL_STORE_FULL', `the model store already holds ${this.models.size} models`, {
          hint: 'remove models you no longer serve (`llmesh model rm`)'
        })
      }
      const created = new Map<string, CID>()
      try {
        return await this.adoptDag(rootCid, name, fetchBlock, created, options)
      } catch (err) {
        await this.deleteCreated(created)
        throw err
      }
    })
  }

  private async adoptDag(
    root: CID,
    name: string,
    fetchBlock: BlockReader,
    created: Map<string, CID>,
    options: AdoptOptions
  ): Promise<StoredModel> {
    const progress: FetchProgress = { blocksSeen: 0, blocksPresent: 0, blocksFetched: 0, bytesFetched: 0, bytesPresent: 0, fileSize: 0 }
    const leafSizes = new Map<string, number>()
    // every block goes through here: from the store if present, else from the peer, checked and stored
    const obtain: BlockReader = async (cid, opts) => {
      if (await this.blocks.has(cid)) return this.reader(cid, opts)
      const bytes = await fetchBlock(cid, opts)
      if (bytes.byteLength > MODEL_LIMITS.maxBlockBytes || !(await verifyBlock(cid, bytes))) {
        throw new ModelDagError(
          'MODEL_DAG_INVALID',
          root.toString(),
          `a peer sent bytes for block ${cid} that do not hash to it`,
          'fetch again; the peer is faulty or malicious'
        )
      }
      await this.blocks.put(cid, bytes, opts)
      created.set(blockKey(cid), cid)
      progress.blocksFetched++
      progress.bytesFetched += bytes.byteLength
      // leaves carry the file bytes; internal nodes add a little per block
      if (progress.bytesFetched > progress.fileSize + progress.blocksSeen * 1024 + MODEL_LIMITS.maxBlockBytes) {
        throw new ModelDagError(
          'MODEL_DAG_TOO_LARGE',
          root.toString(),
          `model ${root} sent more bytes than its root declares (${progress.fileSize})`,
          'the DAG is malformed; fetch from another peer'
        )
      }
      return bytes
    }
    checkBlockCid(root, root)
    const { fileSize } = await readFileRoot(obtain, root, options)
    if (fileSize > this.maxModelBytes) {
      throw new ModelDagError(
        'MODEL_DAG_TOO_LARGE',
        root.toString(),
        `model ${root} is ${fileSize} bytes, more than the limit of ${this.maxModelBytes}`,
        'this store does not take models that large'
      )
    }
    progress.fileSize = fileSize
    const concurrency = Math.max(1, options.concurrency ?? MODEL_DEFAULTS.fetchConcurrency)
    const inFlight = new Set<Promise<void>>()
    let failure: { err: unknown } | undefined
    const seen = new Set<string>()
    for await (const cid of walkFileDag(obtain, root, { signal: options.signal, leafSizes })) {
      seen.add(blockKey(cid))
      progress.blocksSeen = seen.size
      if (failure != null) break
      if (cid.code !== raw.code) {
        options.onProgress?.({ ...progress })
        continue // internal nodes were obtained by the walk itself
      }
      const task = (async () => {
        if (await this.blocks.has(cid)) {
          progress.blocksPresent++
          progress.bytesPresent += leafSizes.get(blockKey(cid)) ?? 0
        } else {
          await obtain(cid, options)
        }
        options.onProgress?.({ ...progress })
      })().catch((err: unknown) => {
        failure ??= { err }
      })
      const tracked = task.finally(() => inFlight.delete(tracked))
      inFlight.add(tracked)
      if (inFlight.size >= concurrency) await Promise.race(inFlight)
    }
    await Promise.all(inFlight)
    if (failure != null) throw failure.err
    // the whole file must read back from the store with the declared size; this also hashes it
    const { size, sha256 } = await this.hashModel(root, options.signal)
    if (size !== fileSize) {
      throw new ModelDagError(
        'MODEL_DAG_INVALID',
        root.toString(),
        `model ${root} reads back as ${size} bytes but its root declares ${fileSize}`,
        'the DAG is malformed; fetch from another peer'
      )
    }
    const model: StoredModel = {
      cid: root.toString(),
      name,
      size,
      sha256,
      blocks: seen.size,
      addedAt: this.now(),
      source: 'peer'
    }
    await this.persist([...this.models.values(), model])
    this.models.set(model.cid, model)
    return { ...model }
  }

  private get blocks(): FsBlockstore {
    if (this.blockstore == null) throw new ModelStoreStoppedError()
    return this.blockstore
  }

  private readonly reader: BlockReader = (cid, options) => localBlockReader(this.blocks)(cid, options)

  private assertRunning(): void {
    if (!this.running) throw new ModelStoreStoppedError()
  }

  private require(root: CID): StoredModel {
    const model = this.models.get(root.toString())
    if (model == null) throw new ModelNotStoredError(root.toString())
    return model
  }

  private filePath(cid: string): string {
    return join(this.paths.files, `${cid}.gguf`)
  }

  private async persist(models: StoredModel[]): Promise<void> {
    await this.indexFile.write(models)
    this.indexSignature = await this.signatureOfIndex()
  }

  /**
   * Runs a change to the store alone: in this process (the mutation lock) and among processes
   * (the store's lock file), on the list as it is on disk now.
   */
  private async exclusive<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    return this.mutations.write(async () => {
      this.assertRunning()
      const release = await lockStoreDir(this.paths.lock, { waitMs: this.lockWaitMs, signal, onWait: this.onLockWait })
      try {
        await this.reloadIndex()
        return await fn()
      } finally {
        await release()
      }
    })
  }

  private async signatureOfIndex(): Promise<string> {
    const st = await stat(this.paths.index).catch((err: unknown) => {
      if (isSystemError(err, 'ENOENT')) return undefined
      throw err
    })
    return st == null ? 'absent' : `${st.mtimeMs}:${st.size}:${st.ino}`
  }

  private async reloadIndex(): Promise<void> {
    // the signature is taken first: a write landing between the two is seen by the next refresh
    const signature = await this.signatureOfIndex()
    const models = await this.indexFile.read()
    this.models.clear()
    for (const model of models) this.models.set(model.cid, model)
    this.indexSignature = signature
  }

  /** Every block key of the given models' DAGs; throws if one of them cannot be read. */
  private async blocksOfModels(models: StoredModel[]): Promise<Set<string>> {
    const keys = new Set<string>()
    for (const model of models) {
      try {
        for await (const block of walkFileDag(this.reader, CID.parse(model.cid))) keys.add(blockKey(block))
      } catch (err) {
        if (!(err instanceof ModelIntegrityError)) throw err
        throw new ModelIntegrityError('MODEL_CORRUPT', `stored model ${model.cid} (${model.name}) cannot be read: ${err.shortMessage}`, {
          hint: `remove ${model.cid} first (it is damaged), then retry`,
          cause: err
        })
      }
    }
    return keys
  }

  private async deleteCreated(created: Map<string, CID>): Promise<void> {
    for (const cid of created.values()) await this.blocks.delete(cid).catch(() => {})
  }

  private async importOpenFile(fh: FileHandle, size: number, path: string, name: string, options: AddModelOptions): Promise<StoredModel> {
    const created = new Map<string, CID>()
    const seen = new Set<string>()
    const blocks = this.blocks
    const hash = createHash('sha256')
    let position = 0
    const changed = (): ModelFileError =>
      new ModelFileError(
        'MODEL_FILE_CHANGED',
        path,
        `${path} changed size while it was being imported (${size} bytes expected)`,
        'wait until the file is completely written, then add it again'
      )
    async function* content(): AsyncGenerator<Uint8Array> {
      for (;;) {
        options.signal?.throwIfAborted()
        const buf = Buffer.allocUnsafe(MODEL_DEFAULTS.importReadBytes)
        const { bytesRead } = await fh.read(buf, 0, buf.byteLength, position)
        if (bytesRead === 0) break
        position += bytesRead
        if (position > size) throw changed()
        const chunk = buf.subarray(0, bytesRead)
        hash.update(chunk)
        options.onProgress?.({ bytesRead: position, totalBytes: size })
        yield chunk
      }
      if (position !== size) throw changed()
    }
    const sink = {
      put: async (cid: CID, bytes: Uint8Array, opts?: { signal?: AbortSignal }): Promise<CID> => {
        const key = blockKey(cid)
        if (!seen.has(key)) {
          seen.add(key)
          if (!(await blocks.has(cid))) created.set(key, cid)
        }
        await blocks.put(cid, bytes, opts)
        return cid
      }
    }
    try {
      const result = await importFile({ content: content() }, sink, modelImporterOptions())
      const cid = result.cid.toV1().toString()
      const existing = this.models.get(cid)
      if (existing != null) return { ...existing }
      const model: StoredModel = {
        cid,
        name,
        size,
        sha256: hash.digest('hex'),
        blocks: seen.size,
        addedAt: this.now(),
        source: 'file'
      }
      await this.persist([...this.models.values(), model])
      this.models.set(cid, model)
      return { ...model }
    } catch (err) {
      await this.deleteCreated(created)
      throw err
    }
  }

  /** Size and SHA-256 of the file the DAG under `root` holds, reading every block (checked) from the store. */
  private async hashModel(root: CID, signal: AbortSignal | undefined): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of await fileContent(this.reader, root, signal)) {
      size += chunk.byteLength
      if (size > this.maxModelBytes) {
        throw new ModelDagError('MODEL_DAG_TOO_LARGE', root.toString(), `model ${root} is larger than its limit`, 'refused')
      }
      hash.update(chunk)
    }
    return { size, sha256: hash.digest('hex') }
  }

  /** Writes the model's file to `outPath` through a temporary file, checked against the recorded size and hash. */
  private async writeModelFile(model: StoredModel, outPath: string, mode: number, signal: AbortSignal | undefined): Promise<ExportResult> {
    const tmp = `${outPath}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    const hash = createHash('sha256')
    let size = 0
    const fh = await open(tmp, 'wx', mode)
    try {
      for await (const chunk of await fileContent(this.reader, CID.parse(model.cid), signal)) {
        size += chunk.byteLength
        if (size > model.size) break
        hash.update(chunk)
        await writeAll(fh, chunk)
      }
      await fh.sync()
    } catch (err) {
      await fh.close()
      await unlink(tmp).catch(() => {})
      throw err
    }
    await fh.close()
    const sha256 = hash.digest('hex')
    if (size !== model.size || sha256 !== model.sha256) {
      await unlink(tmp).catch(() => {})
      throw new ModelIntegrityError(
        'MODEL_CORRUPT',
        `model ${model.cid} reads back as ${size} bytes with SHA-256 ${sha256}, not the ${model.size} bytes with ${model.sha256} it was stored as`,
        { hint: 'the block store is damaged; remove the model and add or fetch it again' }
      )
    }
    await rename(tmp, outPath)
    return { path: outPath, size, sha256 }
  }
}

/** The bytes of the file under `root`, every block checked by `read`. */
async function fileContent(read: BlockReader, root: CID, signal: AbortSignal | undefined): Promise<AsyncIterable<Uint8Array>> {
  const entry = await exporter(root, exporterStorage(read), { signal })
  if (entry.type !== 'file' && entry.type !== 'raw') {
    throw new ModelDagError('MODEL_DAG_UNSUPPORTED', root.toString(), `${root} is a UnixFS ${entry.type}, not a file`, 'give a file CID')
  }
  return entry.content({ signal })
}

/** SHA-256 (hex) of a file, streamed. */
async function sha256OfFile(path: string, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash('sha256')
  const fh = await open(path, 'r')
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: MODEL_DEFAULTS.importReadBytes, signal, autoClose: false })) {
      hash.update(chunk as Buffer)
    }
  } finally {
    await fh.close()
  }
  return hash.digest('hex')
}
