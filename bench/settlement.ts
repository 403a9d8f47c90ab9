// npm run bench:settlement — what paying for inference costs, measured in one run:
//  (a) the host's voucher check per request (HostPayments.admit + bill, as a host runs them), with
//      the default policy (a payer's signature checked at most every second, or sooner when the
//      unchecked debt passes a bound) against the baseline of checking every voucher's signature;
//  (b) the chain settling redemptions: blocks full of `redeem` transactions (12 vouchers each,
//      from distinct payers) through buildBlock, as vouchers per second of CPU and per block;
//      with a baseline of blocks of transfers in the same run.
// One voucher settles every request its payer made to the host since the last redemption, so
// payments settled per second = vouchers per second x requests per voucher (shown for a payer
// making 1 request per second to a host that redeems every 60 s, the default interval).
// Figures go to docs/performance.md with the date and machine.
import '../src/polyfill.ts'
import { cpus, loadavg } from 'node:os'
import pino from 'pino'
import { buildBlock, type ChainState, encodeTx, genesisState, signTx, signVoucher } from '../src/chain/index.ts'
import { SignatureVerifier, type Signer, signerFromSeed } from '../src/crypto/index.ts'
import { CHAIN_DEFAULTS, HOST_DEFAULTS } from '../src/params/index.ts'
import { HostPayments, VoucherWallet } from '../src/payments/index.ts'

const quick = process.argv.includes('--quick')
const MODEL = 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4'
const CHAIN = 'bench'
console.log(
  `bench:settlement  ${new Date().toISOString()}  node ${process.version}  ${cpus().length} x ${cpus()[0]?.model}  load ${loadavg()[0]?.toFixed(1)}`
)

const signers: Signer[] = Array.from({ length: 2_100 }, (_, i) =>
  signerFromSeed(
    Buffer.alloc(32, 0)
      .fill(i % 251, 0, 16)
      .fill(Math.floor(i / 251) + 1, 16)
  )
)
const host = signers[0] as Signer
const validator = signers[1] as Signer
const payers = signers.slice(100)
const verifier = new SignatureVerifier()

function genesis(): ChainState {
  return genesisState(
    {
      chainId: CHAIN,
      genesisTime: 0,
      params: { minValidatorStake: '1', maxBlockTxs: 20_000 },
      accounts: signers.map((s) => ({ address: s.address, balance: '1000000000000' })),
      validators: [{ address: validator.address, stake: '1' }],
      models: [{ name: 'tiny', cid: MODEL, parameters: '500000' }],
      escrows: payers.map((p) => ({ payer: p.address, amount: '1000000000000' }))
    },
    verifier
  )
}
const state = genesis()
const chain = { state, submitOwn: () => ({ ok: true }) }

// (a) the host's check per request: a few payers sending request after request
function hostCheck(label: string, verifyIntervalMs: number, maxUnverifiedAmount: bigint): number {
  const payments = new HostPayments(
    { chain, verifier: new SignatureVerifier(), log: pino({ level: 'silent' }) },
    { host: host.address, redeemIntervalMs: 60_000, verifyIntervalMs, maxUnverifiedAmount }
  )
  const wallets = payers.slice(0, 8).map((p) => new VoucherWallet(p, CHAIN))
  const requests = quick ? 2_000 : 20_000
  // the edges' vouchers are made first: only the host's work is timed
  const vouchers: Uint8Array[] = []
  const payerOf: string[] = []
  for (let i = 0; i < requests; i++) {
    payerOf.push((payers[i % wallets.length] as Signer).address)
    const w = wallets[i % wallets.length] as VoucherWallet
    w.charge(host.address, 300n) // what the previous job cost
    vouchers.push(w.voucher(host.address))
  }
  const t = performance.now()
  for (let i = 0; i < requests; i++) {
    const admission = payments.admit(payerOf[i] as string, MODEL, vouchers[i], 200, 16)
    admission.bill(10, 16)
    admission.release()
  }
  const us = ((performance.now() - t) * 1000) / requests
  console.log(`(a) ${label}: ${us.toFixed(1)} µs per request`)
  return us
}
const baselineUs = hostCheck('every voucher signature checked (baseline)', 0, 0n)
const deferredUs = hostCheck(
  `signatures checked every ${HOST_DEFAULTS.voucherVerifyIntervalMs} ms or past ${HOST_DEFAULTS.maxUnverifiedVoucherAmount} unchecked`,
  HOST_DEFAULTS.voucherVerifyIntervalMs,
  HOST_DEFAULTS.maxUnverifiedVoucherAmount
)
console.log(
  `    target < 100 µs per request: ${deferredUs < 100 ? 'PASS' : 'MISS'} (${(baselineUs / deferredUs).toFixed(1)}x cheaper than checking every one)`
)

// (b) the chain: blocks of redeem transactions, 12 vouchers from distinct payers each
const perTx = 12
const txCount = quick ? 40 : Math.floor(payers.length / perTx)
const redeemTxs: Uint8Array[] = []
let nonce = 0
for (let i = 0; i < txCount; i++) {
  const vouchers = payers
    .slice(i * perTx, (i + 1) * perTx)
    .map((p) => signVoucher(p, { chainId: CHAIN, host: host.address, amount: 30_000n, seq: 1 }))
  redeemTxs.push(
    encodeTx(
      signTx(
        {
          chainId: CHAIN,
          from: host.address,
          nonce: nonce++,
          fee: 0n,
          body: { type: 'redeem', vouchers, served: [{ model: MODEL, tokens: 100n }] }
        },
        host
      )
    )
  )
}
const transferTxs = Array.from({ length: 12 * txCount }, (_, i) =>
  encodeTx(
    signTx(
      {
        chainId: CHAIN,
        from: (signers[2 + (i % 90)] as Signer).address,
        nonce: Math.floor(i / 90),
        fee: 0n,
        body: { type: 'transfer', to: host.address, amount: 1n }
      },
      signers[2 + (i % 90)] as Signer
    )
  )
)
function blockOf(label: string, txs: Uint8Array[], count: (s: ChainState) => number): number {
  const start = genesis()
  const t = performance.now()
  const built = buildBlock(start, {
    proposer: validator.address,
    time: 1_000,
    lastCommit: null,
    candidates: txs,
    verifier: new SignatureVerifier()
  })
  const seconds = (performance.now() - t) / 1000
  const n = count(built.state)
  if (built.block.txs.length !== txs.length)
    throw new Error(`${label}: ${txs.length - built.block.txs.length} transactions refused: ${built.rejected[0]?.error.message}`)
  console.log(`(b) ${label}: ${txs.length} txs, ${n} settled in ${(seconds * 1000).toFixed(0)} ms: ${Math.round(n / seconds)}/s`)
  return n / seconds
}
const transfersPerSec = blockOf('transfers (baseline)', transferTxs, () => transferTxs.length)
const vouchersPerSec = blockOf('redeem transactions', redeemTxs, (s) => s.redeemed.size)
const txBytes = redeemTxs[0]?.byteLength ?? 1
const perBlock = Math.floor(Math.min(CHAIN_DEFAULTS.maxBlockTxs, (CHAIN_DEFAULTS.maxBlockBytes - 64 * 1024) / txBytes)) * perTx
const perBlockTimeSec = (perBlock / (CHAIN_DEFAULTS.blockTimeMs / 1000)).toFixed(0)
console.log(`    vouchers per second: ${(vouchersPerSec / transfersPerSec).toFixed(2)}x the transfers per second`)
console.log(
  `    block capacity: ${perBlock} vouchers per block (${txBytes}-byte redeem txs in ${CHAIN_DEFAULTS.maxBlockBytes} bytes) = ${perBlockTimeSec}/s at ${CHAIN_DEFAULTS.blockTimeMs} ms blocks`
)
const requestsPerVoucher = HOST_DEFAULTS.redeemIntervalMs / 1000
const settled = Math.min(vouchersPerSec, perBlock / (CHAIN_DEFAULTS.blockTimeMs / 1000)) * requestsPerVoucher
console.log(
  `    payments settled: ${Math.round(settled)}/s for payers making 1 request/s to a host redeeming every ${requestsPerVoucher} s (${requestsPerVoucher} requests per voucher); target >= 10,000/s: ${settled >= 10_000 ? 'PASS' : 'MISS'}`
)
