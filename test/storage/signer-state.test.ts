import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { decodeCanonical, encodeCanonical } from '../../src/codec/index.ts'
import { decodeConsensusMessage, encodeConsensusMessage, type OwnMessages } from '../../src/consensus/index.ts'
import { SignatureVerifier } from '../../src/crypto/index.ts'
import {
  DurableFile,
  type FileCodec,
  jsonCodec,
  type SignerRecord,
  SignerStateFiles,
  SlotFile,
  type StoreCorruptError
} from '../../src/storage/index.ts'
import { makeSigners, makeState } from '../chain/fixtures.ts'
import { tempDir } from '../helpers.ts'
import { signedMessages } from './signed-messages.ts'

const verifier = new SignatureVerifier()
const [signer] = makeSigners(1) as [ReturnType<typeof makeSigners>[number]]
const state = makeState([signer], 1, verifier)

const numberCodec = jsonCodec((v) => {
  if (typeof v !== 'number') throw new Error('not a number')
  return v
})

test('slot file: the latest record comes back; a torn newest slot falls back to the one before', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'rec')
  const file = new SlotFile(path, numberCodec)
  assert.equal(file.read(), undefined, 'nothing written yet')
  for (let i = 1; i <= 5; i++) file.write(i)
  assert.equal(file.read(), 5)
  file.close()
  assert.equal(new SlotFile(path, numberCodec).read(), 5, 'a reopened file has the latest')
  // a crash in the middle of writing record 5 (into slot 1): its checksum fails, record 4 stands
  const torn = readFileSync(`${path}.1`)
  torn[torn.byteLength - 1] = (torn[torn.byteLength - 1] as number) ^ 0xff
  writeFileSync(`${path}.1`, torn)
  const reopened = new SlotFile(path, numberCodec)
  assert.equal(reopened.read(), 4)
  // and the next write goes on from there, into the torn slot
  reopened.write(7)
  assert.equal(new SlotFile(path, numberCodec).read(), 7)
})

test('slot file: a record whose payload no longer decodes, or two torn slots, are reported, not reset', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'rec')
  const file = new SlotFile(path, numberCodec)
  file.write(1)
  file.write(2)
  file.close()
  for (const slot of ['0', '1'])
    writeFileSync(`${path}.${slot}`, Buffer.from('garbage that is long enough to look like a record, but is not one'))
  assert.throws(
    () => new SlotFile(path, numberCodec).read(),
    (err: StoreCorruptError) => err.code === 'STORE_CORRUPT'
  )
  const other = join(dir, 'other')
  const typed = new SlotFile(other, numberCodec)
  typed.write(1)
  typed.close()
  assert.throws(
    () =>
      new SlotFile(
        other,
        jsonCodec(() => {
          throw new Error('wrong shape')
        })
      ).read(),
    (err: StoreCorruptError) => err.code === 'STORE_CORRUPT'
  )
})

/** The node's codecs, counting the proposals encoded (what each write costs). */
function codecs(): { own: FileCodec<OwnMessages>; record: FileCodec<SignerRecord>; proposalsEncoded: () => number } {
  let proposals = 0
  const encodeOwn = (own: OwnMessages) => {
    for (const m of own.messages) if (m.kind === 'proposal') proposals++
    return { height: own.height, messages: own.messages.map(encodeConsensusMessage) }
  }
  const decodeOwn = (v: { height: number; messages: Uint8Array[] }): OwnMessages => ({
    height: v.height,
    messages: v.messages.map((m) => decodeConsensusMessage(m))
  })
  return {
    proposalsEncoded: () => proposals,
    own: {
      encode: (own) => encodeCanonical(encodeOwn(own)),
      decode: (bytes) => decodeOwn(decodeCanonical(bytes, 1 << 26) as { height: number; messages: Uint8Array[] })
    },
    record: {
      encode: (r) => encodeCanonical({ guard: r.guard, locks: r.locks, votes: encodeOwn(r.votes) }),
      decode: (bytes) => {
        const v = decodeCanonical(bytes, 1 << 26) as {
          guard: SignerRecord['guard']
          locks: SignerRecord['locks']
          votes: { height: number; messages: Uint8Array[] }
        }
        return { guard: v.guard, locks: v.locks, votes: decodeOwn(v.votes) }
      }
    }
  }
}

const messages = (height: number) => signedMessages(state, signer, verifier, height)

const locks = (height: number, lockedRound: number, lockedHash: string | null) => ({
  height,
  round: 0,
  lockedRound,
  lockedHash,
  validRound: lockedRound,
  validHash: lockedHash
})

test('signer state: guard, locks and votes reach disk together at the flush, the proposal once', async (t) => {
  const dir = await tempDir(t)
  const c = codecs()
  const files = new SignerStateFiles(dir, c)
  assert.equal(files.guard, null)
  assert.equal(files.own(), undefined)
  const h1 = messages(1)
  // the proposal: guard point, then the message; nothing on disk until the flush
  files.recordGuard({ height: 1, round: 0, step: 0, blockHash: h1.hash })
  files.recordOwn({ height: 1, messages: [h1.proposal] })
  assert.equal(files.pending, true)
  assert.equal(new SignerStateFiles(dir, c).guard, null, 'not durable before the flush')
  files.flush()
  assert.equal(files.pending, false)
  assert.deepEqual(new SignerStateFiles(dir, c).guard, { height: 1, round: 0, step: 0, blockHash: h1.hash }, 'the guard is durable at once')
  await files.settle()
  // the prevote and the precommit (with a lock): one flush each, the proposal not rewritten
  files.recordGuard({ height: 1, round: 0, step: 1, blockHash: h1.hash })
  files.recordOwn({ height: 1, messages: [h1.proposal, h1.prevote] })
  files.flush()
  files.recordLocks(locks(1, 0, h1.hash))
  files.recordGuard({ height: 1, round: 0, step: 2, blockHash: h1.hash })
  files.recordOwn({ height: 1, messages: [h1.proposal, h1.prevote, h1.precommit] })
  files.flush()
  await files.settle()
  assert.equal(c.proposalsEncoded(), 1, 'the proposal (and its block) is written once')
  const back = new SignerStateFiles(dir, c)
  assert.deepEqual(back.guard, { height: 1, round: 0, step: 2, blockHash: h1.hash })
  assert.deepEqual(back.locks, locks(1, 0, h1.hash))
  assert.deepEqual(
    back.own()?.messages.map((m) => (m.kind === 'vote' ? m.vote.type : m.kind)),
    ['proposal', 'prevote', 'precommit']
  )
  // the next height, where this validator does not propose: the old proposal is not taken back
  const h2 = messages(2)
  files.recordGuard({ height: 2, round: 0, step: 1, blockHash: h2.hash })
  files.recordOwn({ height: 2, messages: [h2.prevote] })
  await files.close()
  const after = new SignerStateFiles(dir, c)
  assert.equal(after.own()?.height, 2)
  assert.deepEqual(
    after.own()?.messages.map((m) => (m.kind === 'vote' ? `${m.vote.type}@${m.vote.height}` : m.kind)),
    ['prevote@2']
  )
  assert.equal(after.guard?.height, 2, 'close flushes what was recorded')
})

test('signer state: a crash at any point leaves a guard at or beyond everything flushed', async (t) => {
  const dir = await tempDir(t)
  const c = codecs()
  const files = new SignerStateFiles(dir, c)
  let flushed: number | null = null
  for (let step = 0; step < 30; step++) {
    const point = { height: 1 + Math.floor(step / 3), round: 0, step: step % 3, blockHash: null }
    files.recordGuard(point)
    files.recordLocks(locks(point.height, -1, null))
    // what a restart would find now: never behind the last flushed point
    const seen = new SignerStateFiles(dir, c).guard
    const key = (p: { height: number; step: number } | null) => (p == null ? -1 : p.height * 3 + p.step)
    assert.ok(key(seen) >= (flushed ?? -1), `restart at ${step} found ${JSON.stringify(seen)}`)
    if (step % 2 === 0) {
      files.flush()
      flushed = key(point)
      assert.equal(key(new SignerStateFiles(dir, c).guard), flushed)
    }
  }
})

test('signer state: the guard, locks and votes of the separate files of an earlier version are taken over', async (t) => {
  const dir = await tempDir(t)
  const c = codecs()
  const h3 = messages(3)
  const guard = { height: 3, round: 0, step: 2, blockHash: h3.hash }
  new DurableFile(
    join(dir, 'sign-guard.json'),
    jsonCodec((v) => v as typeof guard)
  ).write(guard)
  const legacy = (): SignerRecord => ({
    guard:
      new DurableFile(
        join(dir, 'sign-guard.json'),
        jsonCodec((v) => v as typeof guard)
      ).read() ?? null,
    locks: locks(3, 0, h3.hash),
    votes: { height: 3, messages: [h3.prevote, h3.precommit] }
  })
  const files = new SignerStateFiles(dir, c, legacy)
  assert.deepEqual(files.guard, guard)
  // taken over durably at once: a second start does not need the old files
  const again = new SignerStateFiles(dir, c, () => {
    throw new Error('the old files are read only once')
  })
  assert.deepEqual(again.guard, guard)
  assert.deepEqual(again.locks, locks(3, 0, h3.hash))
  assert.equal(again.own()?.messages.length, 2)
})
