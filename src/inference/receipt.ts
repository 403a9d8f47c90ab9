import { hash } from 'node:crypto'
import {
  bytesLength,
  CborReader,
  CborWriter,
  encodedKey,
  headLength,
  MAJOR_ARRAY,
  MAJOR_MAP,
  textLength,
  uintLength
} from '../codec/wire.ts'
import { type Address, SignatureVerifier, type Signer } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { INFERENCE_LIMITS } from '../params/index.ts'
import { batchMessage, leafHash, MAX_PROOF_HASHES, MAX_RECEIPT_BATCH, merkleTree, rootFromProof } from './receipt-batch.ts'

/**
 * A receipt: the host's signed statement that it ran one job. It is canonical DAG-CBOR, so
 * anyone holding the bytes can check it with nothing but the host's peer id (which embeds the
 * public key): later layers pay for receipts (vouchers) and check them (proof of compute).
 *
 * `input` is the SHA-256 of the request exactly as the host received it (the canonical bytes of
 * the job, see `encodeJob`); `output` is the SHA-256 of the generated text in UTF-8. The edge
 * checks both against what it sent and received before it hands the receipt on.
 */
export interface ReceiptBody {
  v: 1
  /** The job id the edge chose. */
  job: string
  /** CID of the model that ran. */
  model: string
  host: Address
  /** The peer that asked (the edge). */
  client: Address
  input: Uint8Array
  output: Uint8Array
  promptTokens: number
  completionTokens: number
  finish: 'stop' | 'length' | 'aborted'
  /** Host clock when the job ended, ms since the epoch. */
  time: number
  /** What the job costs the payer, in the smallest unit (0: the model has no price on chain). */
  cost: bigint
  /** Who pays: the payer of the voucher that came with the job, or null for an unpaid job. */
  payer: string | null
}

export interface Receipt extends ReceiptBody {
  /**
   * Ed25519 signature of the host: over the canonical encoding of the body (every field but `sig`
   * and `proof`) for a receipt signed alone; over its batch's root (see `receipt-batch.ts`) for a
   * receipt with a `proof`.
   */
  sig: Uint8Array
  /** For a receipt signed in a batch: its place in the batch and its Merkle inclusion proof. */
  proof?: ReceiptProof
}

/** Where a batched receipt sits in its batch: leaf `index` of `count`, and the sibling hashes from the leaf up. */
export interface ReceiptProof {
  index: number
  count: number
  path: Uint8Array[]
}

export class ReceiptError extends LlmeshError<'RECEIPT_MALFORMED' | 'RECEIPT_BAD_SIGNATURE'> {}

/** Largest receipt accepted: a few hundred bytes in practice. */
export const MAX_RECEIPT_BYTES = 2048

const BODY_KEYS = 13
const RECEIPT_KEYS = BODY_KEYS + 1
/** A batched receipt also has `proof`. */
const BATCHED_RECEIPT_KEYS = BODY_KEYS + 2
/** Map keys in canonical DAG-CBOR order (shorter first, then bytewise): the only order a receipt may have. */
const K = {
  v: encodedKey('v'),
  job: encodedKey('job'),
  sig: encodedKey('sig'),
  cost: encodedKey('cost'),
  host: encodedKey('host'),
  time: encodedKey('time'),
  input: encodedKey('input'),
  model: encodedKey('model'),
  payer: encodedKey('payer'),
  proof: encodedKey('proof'),
  client: encodedKey('client'),
  finish: encodedKey('finish'),
  output: encodedKey('output'),
  promptTokens: encodedKey('promptTokens'),
  completionTokens: encodedKey('completionTokens')
}
const FINISH_REASONS: readonly string[] = ['stop', 'length', 'aborted']
const MAX_COUNT = 2 ** 32
const MAX_ADDRESS_CHARS = 64
const MAX_JOB_CHARS = 128
const SIG_BYTES = 64
/** Largest UTF-8 encoding of a string of `chars` UTF-16 code units. */
const utf8Bound = (chars: number): number => chars * 3

/** SHA-256 (one-shot `crypto.hash`: a third cheaper than a `Hash` object for messages this small). */
export function sha256(data: Uint8Array | string): Uint8Array {
  const digest = hash('sha256', data, 'buffer')
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
}

const K_PROOF_INDEX = encodedKey('i')
const K_PROOF_COUNT = encodedKey('n')
const K_PROOF_PATH = encodedKey('path')

/** Bytes of a proof's encoding: the map `{i: index, n: count, path: [hash, ...]}`. */
function proofLength(p: ReceiptProof): number {
  let size = 1 + K_PROOF_INDEX.byteLength + uintLength(p.index) + K_PROOF_COUNT.byteLength + uintLength(p.count)
  size += K_PROOF_PATH.byteLength + headLength(p.path.length)
  for (const h of p.path) size += bytesLength(h)
  return size
}

function writeProof(w: CborWriter, p: ReceiptProof): void {
  w.head(MAJOR_MAP, 3)
  w.raw(K_PROOF_INDEX)
  w.uint(p.index)
  w.raw(K_PROOF_COUNT)
  w.uint(p.count)
  w.raw(K_PROOF_PATH)
  w.head(MAJOR_ARRAY, p.path.length)
  for (const h of p.path) w.bytes(h)
}

function readProof(r: CborReader): ReceiptProof {
  if (r.head(MAJOR_MAP) !== 3) r.fail('a proof is a map of 3 fields')
  r.key(K_PROOF_INDEX)
  const index = r.uint(MAX_RECEIPT_BATCH - 1)
  r.key(K_PROOF_COUNT)
  const count = r.uint(MAX_RECEIPT_BATCH)
  if (count < 2 || index >= count) r.fail('a proof places its receipt in a batch of 2 or more')
  r.key(K_PROOF_PATH)
  const length = r.head(MAJOR_ARRAY)
  if (length > MAX_PROOF_HASHES) r.fail(`a proof has at most ${MAX_PROOF_HASHES} hashes`)
  const path: Uint8Array[] = []
  for (let i = 0; i < length; i++) path.push(bytes32(r, 'a proof hash'))
  return { index, count, path }
}

/**
 * The canonical DAG-CBOR of a receipt's body: written field by field in canonical key order, the
 * bytes `@ipld/dag-cbor` gives for the same value (a test checks they agree), without building a
 * token list per receipt. `cuts` gets where the receipt's `sig` and `proof` go in it (see
 * {@link receiptFromBody}).
 */
function encodeBody(b: ReceiptBody, cuts: BodyCuts): Uint8Array {
  const size =
    1 +
    K.v.byteLength +
    1 +
    K.job.byteLength +
    textLength(b.job) +
    K.cost.byteLength +
    uintLength(b.cost) +
    K.host.byteLength +
    textLength(b.host) +
    K.time.byteLength +
    uintLength(b.time) +
    K.input.byteLength +
    bytesLength(b.input) +
    K.model.byteLength +
    textLength(b.model) +
    K.payer.byteLength +
    (b.payer === null ? 1 : textLength(b.payer)) +
    K.client.byteLength +
    textLength(b.client) +
    K.finish.byteLength +
    textLength(b.finish) +
    K.output.byteLength +
    bytesLength(b.output) +
    K.promptTokens.byteLength +
    uintLength(b.promptTokens) +
    K.completionTokens.byteLength +
    uintLength(b.completionTokens)
  const w = new CborWriter(size)
  w.head(MAJOR_MAP, BODY_KEYS)
  w.raw(K.v)
  w.uint(b.v)
  w.raw(K.job)
  w.text(b.job)
  cuts.sig = w.pos
  w.raw(K.cost)
  w.uint(b.cost)
  w.raw(K.host)
  w.text(b.host)
  w.raw(K.time)
  w.uint(b.time)
  w.raw(K.input)
  w.bytes(b.input)
  w.raw(K.model)
  w.text(b.model)
  w.raw(K.payer)
  if (b.payer === null) w.null()
  else w.text(b.payer)
  cuts.proof = w.pos
  w.raw(K.client)
  w.text(b.client)
  w.raw(K.finish)
  w.text(b.finish)
  w.raw(K.output)
  w.bytes(b.output)
  w.raw(K.promptTokens)
  w.uint(b.promptTokens)
  w.raw(K.completionTokens)
  w.uint(b.completionTokens)
  return w.done()
}

/** Where a body's encoding takes a receipt's `sig` (after `job`) and `proof` (after `payer`), in canonical key order. */
interface BodyCuts {
  sig: number
  proof: number
}

/**
 * The receipt whose body encodes to `body` (cut at `cuts`), with `sig` and `proof`: the body's
 * bytes with the two fields spliced in at their places in canonical key order (a body of 13
 * fields has a one-byte map head, as does a receipt of 14 or 15).
 */
function receiptFromBody(body: Uint8Array, cuts: BodyCuts, sig: Uint8Array, proof?: ReceiptProof): Uint8Array {
  let size = body.byteLength + K.sig.byteLength + bytesLength(sig)
  if (proof !== undefined) size += K.proof.byteLength + proofLength(proof)
  const w = new CborWriter(size)
  w.head(MAJOR_MAP, proof === undefined ? RECEIPT_KEYS : BATCHED_RECEIPT_KEYS)
  w.raw(body.subarray(1, cuts.sig))
  w.raw(K.sig)
  w.bytes(sig)
  w.raw(body.subarray(cuts.sig, cuts.proof))
  if (proof !== undefined) {
    w.raw(K.proof)
    writeProof(w, proof)
  }
  w.raw(body.subarray(cuts.proof))
  return w.done()
}

/** The canonical bytes the host signs: every field of the receipt but `sig`. */
export function encodeReceiptBody(body: ReceiptBody): Uint8Array {
  return encodeBody(body, { sig: 0, proof: 0 })
}

/** Signs a receipt with the host's key (`body.host` must be the signer's address); returns its canonical bytes. */
export function signReceipt(signer: Signer, body: ReceiptBody): Uint8Array {
  if (body.host !== signer.address) throw new Error('a receipt is signed by the host it names')
  const cuts: BodyCuts = { sig: 0, proof: 0 }
  const bytes = encodeBody(body, cuts)
  return receiptFromBody(bytes, cuts, signer.sign(bytes))
}

function boundedText(r: CborReader, maxChars: number, what: string): string {
  const s = r.text(utf8Bound(maxChars))
  if (s.length === 0 || s.length > maxChars) r.fail(`${what} must be 1 to ${maxChars} characters`)
  return s
}

function bytes32(r: CborReader, what: string): Uint8Array {
  const b = r.bytesView(32)
  if (b.byteLength !== 32) r.fail(`${what} must be 32 bytes`)
  return b.slice()
}

/**
 * Decodes a receipt, accepting only the canonical DAG-CBOR of exactly the receipt's fields with
 * their types and bounds; returns it with the bytes its signature covers (the body: the same map
 * without `sig`, cut out of the receipt rather than encoded again).
 */
export function decodeReceipt(bytes: Uint8Array): { receipt: Receipt; body: Uint8Array } {
  const { receipt, spans } = readReceipt(bytes)
  const [mapEnd, sigStart, sigEnd, proofStart, proofEnd] = spans
  // the body: the same map without sig (and proof), as the host encoded it to sign or hash it
  const body = new Uint8Array(bytes.byteLength - (sigEnd - sigStart) - (proofEnd - proofStart))
  body[0] = (MAJOR_MAP << 5) | BODY_KEYS
  let at = 1
  for (const [from, to] of [
    [mapEnd, sigStart],
    [sigEnd, proofStart],
    [proofEnd, bytes.byteLength]
  ] as const) {
    body.set(bytes.subarray(from, to), at)
    at += to - from
  }
  return { receipt, body }
}

/** A receipt's fields, and where its map head ends and its `sig` and `proof` start and end. */
function readReceipt(bytes: Uint8Array): { receipt: Receipt; spans: [number, number, number, number, number] } {
  if (bytes.byteLength > MAX_RECEIPT_BYTES) {
    throw new ReceiptError('RECEIPT_MALFORMED', `not a receipt: ${bytes.byteLength} bytes is over the ${MAX_RECEIPT_BYTES}-byte limit`)
  }
  const r = new CborReader(bytes)
  try {
    const keys = r.head(MAJOR_MAP)
    if (keys !== RECEIPT_KEYS && keys !== BATCHED_RECEIPT_KEYS)
      r.fail(`a receipt is a map of ${RECEIPT_KEYS} or ${BATCHED_RECEIPT_KEYS} fields`)
    const mapEnd = r.pos
    r.key(K.v)
    if (r.uint(1) !== 1) r.fail('unknown receipt version')
    r.key(K.job)
    const job = boundedText(r, MAX_JOB_CHARS, 'job')
    const sigStart = r.pos
    r.key(K.sig)
    const sig = r.bytesView(SIG_BYTES)
    if (sig.byteLength !== SIG_BYTES) r.fail(`sig must be ${SIG_BYTES} bytes`)
    const sigEnd = r.pos
    r.key(K.cost)
    const cost = r.bigUint()
    r.key(K.host)
    const host = boundedText(r, MAX_ADDRESS_CHARS, 'host')
    r.key(K.time)
    const time = r.uint(Number.MAX_SAFE_INTEGER)
    r.key(K.input)
    const input = bytes32(r, 'input')
    r.key(K.model)
    const model = boundedText(r, INFERENCE_LIMITS.maxModelIdBytes, 'model')
    r.key(K.payer)
    const payer = r.nullable() ? null : boundedText(r, MAX_ADDRESS_CHARS, 'payer')
    const proofStart = r.pos
    let proof: ReceiptProof | undefined
    if (keys === BATCHED_RECEIPT_KEYS) {
      r.key(K.proof)
      proof = readProof(r)
    }
    const proofEnd = r.pos
    r.key(K.client)
    const client = boundedText(r, MAX_ADDRESS_CHARS, 'client')
    r.key(K.finish)
    const finish = r.text(8)
    if (!FINISH_REASONS.includes(finish)) r.fail('finish must be stop, length or aborted')
    r.key(K.output)
    const output = bytes32(r, 'output')
    r.key(K.promptTokens)
    const promptTokens = r.uint(MAX_COUNT)
    r.key(K.completionTokens)
    const completionTokens = r.uint(MAX_COUNT)
    if (!r.done) r.fail('bytes after the receipt')
    const receipt: Receipt = {
      v: 1,
      job,
      model,
      host,
      client,
      input,
      output,
      promptTokens,
      completionTokens,
      finish: finish as Receipt['finish'],
      time,
      cost,
      payer,
      sig: sig.slice()
    }
    if (proof !== undefined) receipt.proof = proof
    return { receipt, spans: [mapEnd, sigStart, sigEnd, proofStart, proofEnd] }
  } catch (err) {
    if (err instanceof ReceiptError) throw err
    throw new ReceiptError('RECEIPT_MALFORMED', `not a receipt: ${(err as Error).message.slice(0, 200)}`, { cause: err })
  }
}

/** The message a receipt's signature covers: its body, or for a batched receipt the root its proof leads to. */
function signedMessage(receipt: Receipt, body: Uint8Array): Uint8Array {
  if (receipt.proof === undefined) return body
  const { index, count, path } = receipt.proof
  const root = rootFromProof(leafHash(body), index, count, path)
  if (root === null) throw new ReceiptError('RECEIPT_MALFORMED', `not a receipt: its proof does not fit leaf ${index} of ${count}`)
  return batchMessage(root, count)
}

/** Decodes a receipt and checks its signature; throws {@link ReceiptError} otherwise. */
export function verifyReceipt(bytes: Uint8Array, verifier: SignatureVerifier = new SignatureVerifier()): Receipt {
  const { receipt, body } = decodeReceipt(bytes)
  if (!verifier.verify(receipt.host, signedMessage(receipt, body), receipt.sig)) {
    throw new ReceiptError('RECEIPT_BAD_SIGNATURE', `the receipt is not signed by its host ${receipt.host}`)
  }
  return receipt
}

/**
 * Checks receipts as {@link verifyReceipt} does, and remembers the last few batch signatures it
 * found good (host, signed root, signature: all compared in full), so the receipts of one batch
 * cost one Ed25519 check between them. A receipt signed alone is always checked.
 */
export class ReceiptChecker {
  private readonly verifier: SignatureVerifier
  private readonly maxRemembered: number
  private readonly good: Array<{ host: Address; message: Uint8Array; sig: Uint8Array }> = []

  constructor(verifier: SignatureVerifier = new SignatureVerifier(), maxRemembered = 8) {
    this.verifier = verifier
    this.maxRemembered = maxRemembered
  }

  /** A receipt's fields, read and bounded as `verify` reads them, but its signature not checked. */
  read(bytes: Uint8Array): Receipt {
    return readReceipt(bytes).receipt
  }

  verify(bytes: Uint8Array): Receipt {
    const { receipt, body } = decodeReceipt(bytes)
    const message = signedMessage(receipt, body)
    if (receipt.proof !== undefined && this.remembers(receipt.host, message, receipt.sig)) return receipt
    if (!this.verifier.verify(receipt.host, message, receipt.sig)) {
      throw new ReceiptError('RECEIPT_BAD_SIGNATURE', `the receipt is not signed by its host ${receipt.host}`)
    }
    if (receipt.proof !== undefined) {
      if (this.good.length >= this.maxRemembered) this.good.shift()
      this.good.push({ host: receipt.host, message, sig: receipt.sig })
    }
    return receipt
  }

  private remembers(host: Address, message: Uint8Array, sig: Uint8Array): boolean {
    for (let i = this.good.length - 1; i >= 0; i--) {
      const g = this.good[i]
      if (g !== undefined && g.host === host && bytesEqual(g.sig, sig) && bytesEqual(g.message, message)) return true
    }
    return false
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Signs the receipts of a host's jobs in batches: `add` puts a receipt body in the open batch and
 * returns a function that gives the receipt's bytes; the first such call signs the whole open batch
 * (one signature over the Merkle root of its bodies; a batch of one is signed as a single receipt,
 * with no proof) and closes it, so the receipts of jobs that end together (sent in one write)
 * share one signature. A batch holds at most {@link MAX_RECEIPT_BATCH} receipts; a body too large
 * to leave room for a proof is signed alone.
 */
export class ReceiptBatcher {
  private readonly signer: Signer
  private open: PendingBatch | undefined

  constructor(signer: Signer) {
    this.signer = signer
  }

  add(body: ReceiptBody): () => Uint8Array {
    if (body.host !== this.signer.address) throw new Error('a receipt is signed by the host it names')
    const cuts: BodyCuts = { sig: 0, proof: 0 }
    const bytes = encodeBody(body, cuts)
    if (bytes.byteLength > MAX_BATCHED_BODY_BYTES) {
      let signed: Uint8Array | undefined
      return () => {
        signed ??= receiptFromBody(bytes, cuts, this.signer.sign(bytes))
        return signed
      }
    }
    let batch = this.open
    if (batch === undefined || batch.cuts.length >= MAX_RECEIPT_BATCH) {
      batch = { cuts: [], encoded: [], receipts: undefined }
      this.open = batch
    }
    const index = batch.cuts.length
    batch.cuts.push(cuts)
    batch.encoded.push(bytes)
    const pending = batch
    return () => {
      if (pending.receipts === undefined) {
        if (this.open === pending) this.open = undefined
        pending.receipts = this.signBatch(pending)
      }
      return pending.receipts[index] as Uint8Array
    }
  }

  private signBatch(batch: PendingBatch): Uint8Array[] {
    const { cuts, encoded } = batch
    const first = encoded[0] as Uint8Array
    if (encoded.length === 1) return [receiptFromBody(first, cuts[0] as BodyCuts, this.signer.sign(first))]
    const { root, proofs } = merkleTree(encoded.map(leafHash))
    const count = encoded.length
    const sig = this.signer.sign(batchMessage(root, count))
    return encoded.map((body, index) =>
      receiptFromBody(body, cuts[index] as BodyCuts, sig, { index, count, path: proofs[index] as Uint8Array[] })
    )
  }
}

interface PendingBatch {
  /** Where each body takes its receipt's `sig` and `proof`. */
  cuts: BodyCuts[]
  /** The bodies' canonical bytes, as signed (alone) or hashed (leaves of the batch's tree). */
  encoded: Uint8Array[]
  receipts: Uint8Array[] | undefined
}

/** A body above this is signed alone: with a signature and a full proof it must stay under MAX_RECEIPT_BYTES. */
const MAX_BATCHED_BODY_BYTES = MAX_RECEIPT_BYTES - 512

/** A receipt as JSON (hashes and signature in hex), for the HTTP API. */
export function receiptJson(r: Receipt): Record<string, string | number | null | ReceiptProofJson> {
  const json: Record<string, string | number | null | ReceiptProofJson> = {
    v: r.v,
    job: r.job,
    model: r.model,
    host: r.host,
    client: r.client,
    input: Buffer.from(r.input).toString('hex'),
    output: Buffer.from(r.output).toString('hex'),
    promptTokens: r.promptTokens,
    completionTokens: r.completionTokens,
    finish: r.finish,
    time: r.time,
    cost: r.cost.toString(),
    payer: r.payer,
    sig: Buffer.from(r.sig).toString('hex')
  }
  if (r.proof !== undefined) {
    json.proof = { index: r.proof.index, count: r.proof.count, path: r.proof.path.map((h) => Buffer.from(h).toString('hex')) }
  }
  return json
}

/** A batched receipt's proof as JSON (hashes in hex). */
export interface ReceiptProofJson {
  index: number
  count: number
  path: string[]
}
