import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeCanonical, encodeCanonical } from '../../src/codec/index.ts'
import { decodeConsensusMessage, encodeConsensusMessage, type OwnMessages } from '../../src/consensus/index.ts'
import { SignatureVerifier } from '../../src/crypto/index.ts'
import { type FileCodec, OwnMessagesFiles } from '../../src/storage/index.ts'
import { makeSigners, makeState } from '../chain/fixtures.ts'
import { tempDir } from '../helpers.ts'
import { signedMessages } from './signed-messages.ts'

const verifier = new SignatureVerifier()
const [signer] = makeSigners(1) as [ReturnType<typeof makeSigners>[number]]
const state = makeState([signer], 1, verifier)

/** The node's codec, counting how many messages of each kind it encodes (what each write costs). */
function countingCodec(): { codec: FileCodec<OwnMessages>; encoded: Record<string, number> } {
  const encoded: Record<string, number> = {}
  return {
    encoded,
    codec: {
      encode: (own) => {
        for (const m of own.messages) encoded[m.kind] = (encoded[m.kind] ?? 0) + 1
        return encodeCanonical({ height: own.height, messages: own.messages.map(encodeConsensusMessage) })
      },
      decode: (bytes) => {
        const v = decodeCanonical(bytes, 1 << 26) as { height: number; messages: Uint8Array[] }
        return { height: v.height, messages: v.messages.map((m) => decodeConsensusMessage(m)) }
      }
    }
  }
}

const messages = (height: number) => signedMessages(state, signer, verifier, height)

test('own messages: a vote does not rewrite the proposal, and a restart gets back the latest height', async (t) => {
  const dir = await tempDir(t)
  const { codec, encoded } = countingCodec()
  const files = new OwnMessagesFiles(dir, codec)
  assert.equal(files.read(), undefined)
  const h1 = messages(1)
  files.write({ height: 1, messages: [h1.proposal] })
  files.write({ height: 1, messages: [h1.proposal, h1.prevote] })
  files.write({ height: 1, messages: [h1.proposal, h1.prevote, h1.precommit] })
  assert.equal(encoded.proposal, 1, 'the proposal (and its block) is written once')
  assert.equal(encoded.vote, 3)
  const back = new OwnMessagesFiles(dir, codec).read()
  assert.equal(back?.height, 1)
  assert.deepEqual(
    back?.messages.map((m) => (m.kind === 'vote' ? m.vote.type : m.kind)),
    ['proposal', 'prevote', 'precommit']
  )
  // the next height, where this validator does not propose: the old proposal is not taken back
  const h2 = messages(2)
  files.write({ height: 2, messages: [h2.prevote] })
  assert.equal(encoded.proposal, 1)
  const after = new OwnMessagesFiles(dir, codec).read()
  assert.equal(after?.height, 2)
  assert.deepEqual(
    after?.messages.map((m) => (m.kind === 'vote' ? `${m.vote.type}@${m.vote.height}` : m.kind)),
    ['prevote@2']
  )
  // a proposal at the latest height comes back even before this validator voted on it
  const h3 = messages(3)
  files.write({ height: 3, messages: [h3.proposal] })
  const third = new OwnMessagesFiles(dir, codec).read()
  assert.deepEqual(
    third?.messages.map((m) => m.kind),
    ['proposal']
  )
  assert.equal(third?.height, 3)
})
