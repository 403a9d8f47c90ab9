// npm run bench:chain — what the chain can do on this machine, measured in one run:
//  (a) Ed25519 verification alone (the baseline: every transfer costs one),
//  (b) the state machine: building and applying blocks of signed transfers,
//  (b2) one node's whole work per transfer: mempool admission, the block check, the mempool
//       re-check after the commit, with the node's TxCache (each signature verified once),
//  (b3) reading a transfer off the wire: hand-written reader against the generic decoder,
//  (c) the consensus simulation: 100 validators, 50 ms links, time to finality.
// Figures go to docs/performance.md with the date and machine.
import '../src/polyfill.ts'
import { cpus } from 'node:os'
import {
  applyBlock,
  buildBlock,
  decodeTx,
  encodeTx,
  genesisState,
  Mempool,
  signedTxSchema,
  signTx,
  TxCache,
  txSignBytes
} from '../src/chain/index.ts'
import { signBytesFromWire } from '../src/chain/tx-wire.ts'
import { decodeCanonical } from '../src/codec/index.ts'
import { runSimulation } from '../src/consensus/index.ts'
import { SignatureVerifier, signerFromSeed } from '../src/crypto/index.ts'

const quick = process.argv.includes('--quick')
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN
}

console.log(`bench:chain  ${new Date().toISOString()}  node ${process.version}  ${cpus().length} x ${cpus()[0]?.model}`)

// (a) baseline
const verifier = new SignatureVerifier()
const signers = Array.from({ length: 200 }, (_, i) => signerFromSeed(new Uint8Array(32).fill(i + 1)))
const msg = new TextEncoder().encode('baseline')
const sigs = signers.map((s) => s.sign(msg))
let t = performance.now()
const N = quick ? 2_000 : 20_000
for (let i = 0; i < N; i++) verifier.verify(signers[i % 200]?.address ?? '', msg, sigs[i % 200] ?? new Uint8Array())
const verifyPerSec = N / ((performance.now() - t) / 1000)
console.log(`(a) Ed25519 verify: ${Math.round(verifyPerSec)}/s`)

// (b) blocks of transfers through buildBlock (proposer) and applyBlock (every other validator)
const genesis = genesisState(
  {
    chainId: 'bench',
    genesisTime: 0,
    params: { minValidatorStake: '1', maxBlockTxs: 20_000 },
    accounts: signers.map((s) => ({ address: s.address, balance: '1000000000000' })),
    validators: [{ address: signers[0]?.address ?? '', stake: '1' }]
  },
  verifier
)
const perBlock = quick ? 1_000 : 5_000
const txs: Uint8Array[] = []
for (let i = 0; i < perBlock; i++) {
  const from = signers[i % 200]
  const to = signers[(i + 1) % 200]
  if (from == null || to == null) throw new Error('signers')
  txs.push(
    encodeTx(
      signTx(
        {
          chainId: 'bench',
          from: from.address,
          nonce: Math.floor(i / 200),
          fee: 1n,
          body: { type: 'transfer', to: to.address, amount: 1n }
        },
        from
      )
    )
  )
}
t = performance.now()
const built = buildBlock(genesis, { proposer: signers[0]?.address ?? '', time: 1, lastCommit: null, candidates: txs, verifier })
const buildMs = performance.now() - t
if (built.block.txs.length !== perBlock) throw new Error(`only ${built.block.txs.length} of ${perBlock} transfers fit`)
t = performance.now()
applyBlock(genesis, built.block, { verifier: new SignatureVerifier() })
const applyMs = performance.now() - t
const applyPerSec = perBlock / (applyMs / 1000)
console.log(
  `(b) block of ${perBlock} transfers: build ${buildMs.toFixed(0)} ms, apply ${applyMs.toFixed(0)} ms = ${Math.round(applyPerSec)} transfers/s applied (${(applyPerSec / verifyPerSec).toFixed(2)} of (a))`
)

// (b2) what one node does per transfer: admit it (decode, verify), check the block carrying it
// (decoding and signature from its TxCache), re-check what is left in the mempool after the commit
const nodeVerifier = new SignatureVerifier()
const cache = new TxCache(2 * perBlock)
const pool = new Mempool(genesis, { maxTxs: 2 * perBlock, maxBytes: 64 * 1024 * 1024 }, nodeVerifier, cache)
t = performance.now()
for (const raw of txs) if (!pool.add(raw).ok) throw new Error('mempool refused a transfer')
const admitMs = performance.now() - t
t = performance.now()
const applied = applyBlock(genesis, built.block, { verifier: nodeVerifier, txCache: cache })
const checkMs = performance.now() - t
t = performance.now()
pool.onCommit(built.block.txs, applied.state)
const recheckMs = performance.now() - t
const perTransferUs = ((admitMs + checkMs + recheckMs) * 1000) / perBlock
console.log(
  `(b2) one node per transfer: admit ${((admitMs * 1000) / perBlock).toFixed(0)} µs, block check ${((checkMs * 1000) / perBlock).toFixed(0)} µs (cached), re-check ${((recheckMs * 1000) / perBlock).toFixed(0)} µs = ${perTransferUs.toFixed(0)} µs = ${Math.round(1e6 / perTransferUs)} transfers/s per core (${(1e6 / perTransferUs / verifyPerSec).toFixed(2)} of (a)); 4 validators on one machine need ${((4 * perTransferUs) / 1000).toFixed(2)} ms of CPU per transfer before HTTP and gossip`
)

// (b3) reading a transfer off the wire: the hand-written reader (decodeTx's hot path) against the
// generic path it replaces (DAG-CBOR decode, re-encode for the canonical check, schema), and the
// signed bytes cut from the wire bytes against re-encoding them
const timeUs = (f: () => void): number => {
  f() // warm
  const t0 = performance.now()
  f()
  return ((performance.now() - t0) * 1000) / txs.length
}
const genericUs = timeUs(() => {
  for (const raw of txs) signedTxSchema.parse(decodeCanonical(raw, 4096))
})
const fastUs = timeUs(() => {
  for (const raw of txs) decodeTx(raw, 4096)
})
const decodedTxs = txs.map((raw) => decodeTx(raw, 4096))
const reencodeUs = timeUs(() => {
  for (const tx of decodedTxs) txSignBytes(tx)
})
const cutUs = timeUs(() => {
  for (const raw of txs) signBytesFromWire(raw)
})
console.log(
  `(b3) decode a transfer: generic ${genericUs.toFixed(1)} µs, hand-written ${fastUs.toFixed(1)} µs (${(genericUs / fastUs).toFixed(0)}x); signed bytes: re-encoded ${reencodeUs.toFixed(1)} µs, cut from the wire ${cutUs.toFixed(1)} µs`
)

// (c) consensus with 100 validators on 50 ms links
const validators = quick ? 20 : 100
t = performance.now()
const sim = runSimulation({
  seed: 42,
  validators,
  durationMs: quick ? 6_000 : 12_000,
  network: { minDelayMs: 50, maxDelayMs: 50, loss: 0 },
  relay: false,
  wireCodec: false,
  txPerSecond: 0,
  blockTimeMs: 1_000,
  timeouts: { proposeMs: 3_000, prevoteMs: 1_000, precommitMs: 1_000, deltaMs: 500 }
})
const wallS = (performance.now() - t) / 1000
console.log(
  `(c) ${validators} validators, 50 ms links: ${sim.hashes.length} blocks, finality p50 ${pct(sim.finalityMs, 50)} ms p99 ${pct(sim.finalityMs, 99)} ms (simulated), block interval p50 ${pct(sim.blockIntervalsMs, 50)} ms; ${wallS.toFixed(1)} s of CPU`
)
