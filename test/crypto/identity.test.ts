import assert from 'node:assert/strict'
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createIdentityKey, type IdentityKeyError, loadIdentityKey } from '../../src/crypto/index.ts'
import { tempDir } from '../helpers.ts'

test('a new key is written with mode 0600 and loads back to the same peer id', async (t) => {
  const path = join(await tempDir(t), 'identity.key')
  const key = await createIdentityKey(path)
  assert.equal((await stat(path)).mode & 0o777, 0o600)
  const loaded = await loadIdentityKey(path)
  assert.equal(loaded.type, 'Ed25519')
  assert.ok(peerIdFromPrivateKey(loaded).equals(peerIdFromPrivateKey(key)))
})

test('an existing key is never overwritten', async (t) => {
  const path = join(await tempDir(t), 'identity.key')
  await createIdentityKey(path)
  const before = await readFile(path)
  await assert.rejects(
    createIdentityKey(path),
    (err: IdentityKeyError) => err.code === 'IDENTITY_KEY_EXISTS' && /refusing to overwrite/.test(err.message)
  )
  assert.deepEqual(await readFile(path), before)
})

test('missing, insecure, malformed and oversized key files give typed errors naming the file', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'identity.key')
  await assert.rejects(
    loadIdentityKey(path),
    (err: IdentityKeyError) => err.code === 'IDENTITY_KEY_NOT_FOUND' && err.message.includes(path)
  )

  await createIdentityKey(path)
  await chmod(path, 0o644)
  await assert.rejects(
    loadIdentityKey(path),
    (err: IdentityKeyError) => err.code === 'IDENTITY_KEY_INSECURE' && /chmod 600/.test(err.message)
  )

  const garbage = join(dir, 'garbage.key')
  await writeFile(garbage, 'this is not a key', { mode: 0o600 })
  await assert.rejects(
    loadIdentityKey(garbage),
    (err: IdentityKeyError) => err.code === 'IDENTITY_KEY_MALFORMED' && err.message.includes(garbage)
  )

  const big = join(dir, 'big.key')
  await writeFile(big, Buffer.alloc(10_000), { mode: 0o600 })
  await assert.rejects(
    loadIdentityKey(big),
    (err: IdentityKeyError) => err.code === 'IDENTITY_KEY_MALFORMED' && /larger than any key/.test(err.message)
  )
})

test('a key path that cannot be read (here: a directory) says so', async (t) => {
  const path = join(await tempDir(t), 'identity.key')
  await mkdir(path, { mode: 0o700 })
  await assert.rejects(
    loadIdentityKey(path),
    (err: IdentityKeyError) => err.code === 'IDENTITY_KEY_UNREADABLE' && err.message.includes(path)
  )
})
