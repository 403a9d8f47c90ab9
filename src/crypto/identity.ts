import { constants } from 'node:fs'
import { link, open, readFile, stat, unlink } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { isSystemError, LlmeshError } from '../errors/index.ts'

/** Largest identity key file we read: a protobuf Ed25519 key is 68 bytes. */
const MAX_KEY_FILE_BYTES = 4096

export type IdentityErrorCode =
  | 'IDENTITY_KEY_EXISTS'
  | 'IDENTITY_KEY_NOT_FOUND'
  | 'IDENTITY_KEY_UNREADABLE'
  | 'IDENTITY_KEY_MALFORMED'
  | 'IDENTITY_KEY_INSECURE'

export class IdentityKeyError extends LlmeshError<IdentityErrorCode> {
  readonly path: string
  constructor(code: IdentityErrorCode, path: string, message: string, hint?: string, cause?: unknown) {
    super(code, message, { hint, cause })
    this.path = path
  }
}

/**
 * Generates a new Ed25519 identity and writes it to `path` with mode 0600. Refuses to replace an
 * existing file: a node's identity is its peer id and (later) its account, so losing it is final.
 */
export async function createIdentityKey(path: string): Promise<PrivateKey> {
  const key = await generateKeyPair('Ed25519')
  const tmp = `${path}.${process.pid}.tmp`
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    await fh.writeFile(privateKeyToProtobuf(key))
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    // link() fails with EEXIST instead of replacing: the key appears whole or not at all
    await link(tmp, path)
  } catch (err) {
    if (isSystemError(err, 'EEXIST')) {
      throw new IdentityKeyError(
        'IDENTITY_KEY_EXISTS',
        path,
        `identity key ${path} already exists`,
        'refusing to overwrite it; use another --home, or remove the file yourself if you really mean to'
      )
    }
    throw err
  } finally {
    await unlink(tmp).catch(() => {})
  }
  return key
}

/** Reads the identity key at `path`, checking that only its owner can read it. */
export async function loadIdentityKey(path: string): Promise<PrivateKey> {
  let bytes: Buffer
  try {
    const info = await stat(path)
    if ((info.mode & 0o077) !== 0) {
      throw new IdentityKeyError(
        'IDENTITY_KEY_INSECURE',
        path,
        `identity key ${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)})`,
        `run: chmod 600 ${path}`
      )
    }
    if (info.size > MAX_KEY_FILE_BYTES) {
      throw new IdentityKeyError(
        'IDENTITY_KEY_MALFORMED',
        path,
        `identity key ${path} is ${info.size} bytes, larger than any key`,
        'it is not an llmesh key file; restore the right file or run `llmesh init` on a new home'
      )
    }
    bytes = await readFile(path)
  } catch (err) {
    if (err instanceof IdentityKeyError) throw err
    if (isSystemError(err, 'ENOENT')) {
      throw new IdentityKeyError(
        'IDENTITY_KEY_NOT_FOUND',
        path,
        `identity key ${path} not found`,
        'run `llmesh init --home <dir>` first',
        err
      )
    }
    throw new IdentityKeyError(
      'IDENTITY_KEY_UNREADABLE',
      path,
      `cannot read identity key ${path}: ${(err as Error).message}`,
      'check the file permissions and that it is owned by the user running llmesh',
      err
    )
  }
  try {
    const key = privateKeyFromProtobuf(bytes)
    if (key.type !== 'Ed25519') throw new Error(`key type ${key.type}, expected Ed25519`)
    return key
  } catch (err) {
    throw new IdentityKeyError(
      'IDENTITY_KEY_MALFORMED',
      path,
      `identity key ${path} is not a valid Ed25519 key (${(err as Error).message})`,
      'restore the right file from a backup or run `llmesh init` on a new home',
      err
    )
  }
}
