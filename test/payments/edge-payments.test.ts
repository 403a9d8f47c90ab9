import assert from 'node:assert/strict'
import { test } from 'node:test'
import { genesisState, verifyVoucher } from '../../src/chain/index.ts'
import { SignatureVerifier, signerFromSeed } from '../../src/crypto/index.ts'
import { EdgePayments, PaymentError } from '../../src/payments/index.ts'

const edge = signerFromSeed(new Uint8Array(32).fill(1))
const host = signerFromSeed(new Uint8Array(32).fill(2))
const MODEL = 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4'
const verifier = new SignatureVerifier()

function chainWith(escrow: string | null) {
  const state = genesisState(
    {
      chainId: 'edge-test',
      genesisTime: 0,
      params: { minValidatorStake: '1' },
      accounts: [{ address: edge.address, balance: '1000' }],
      validators: [{ address: host.address, stake: '1' }],
      models: [{ name: 'tiny', cid: MODEL, parameters: '1000' }],
      escrows: escrow == null ? [] : [{ payer: edge.address, amount: escrow }]
    },
    verifier
  )
  return { state, submitOwn: () => ({ ok: true }) }
}

test('an edge prices a job, refuses with insufficient_quota beyond its escrow, and pays what receipts say within bounds', () => {
  const payments = new EdgePayments({ chain: chainWith('10000'), signer: edge }, 'edge-test')
  const job = payments.prepare(host.address, MODEL, 100, 16)
  assert.ok(job != null)
  // the maximum: (100 + 16 + 8) tokens at base fee 10, multiplier 1x, complexity 1
  assert.equal(job.maxCost, 1_240n)
  assert.equal(verifyVoucher(job.voucher, verifier).amount, 0n)
  const pay = payments.settle(host.address, job, 300n)
  assert.equal(verifyVoucher(pay, verifier).amount, 300n)
  assert.throws(() => payments.settle(host.address, job, 10_000n), PaymentError)
  assert.throws(
    () => payments.prepare(host.address, MODEL, 2_000, 16),
    (err: PaymentError) => err.code === 'insufficient_quota'
  )
  // a model without a price is not paid for; no escrow at all is a 402 as well
  assert.equal(payments.prepare(host.address, 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', 100, 16), undefined)
  const broke = new EdgePayments({ chain: chainWith(null), signer: edge }, 'edge-test')
  assert.throws(
    () => broke.prepare(host.address, MODEL, 1, 1),
    (err: PaymentError) => err.code === 'insufficient_quota'
  )
})

test("after a restart an edge takes a host's claim of what it owes, within a bound", () => {
  const payments = new EdgePayments({ chain: chainWith('1000000'), signer: edge }, 'edge-test')
  assert.equal(payments.reconcile(host.address, 0n), true)
  // the host says 5,000 is owed: taken (within the bound), and the next voucher covers it
  assert.equal(payments.reconcile(host.address, 5_000n, 10_000n), true)
  assert.equal(payments.owedTo(host.address), 5_000n)
  assert.equal(verifyVoucher(payments.prepare(host.address, MODEL, 10, 10)?.voucher ?? new Uint8Array(), verifier).amount, 5_000n)
  // a claim below what the edge knows changes nothing; one far beyond it is refused
  assert.equal(payments.reconcile(host.address, 1_000n, 10_000n), true)
  assert.equal(payments.owedTo(host.address), 5_000n)
  assert.equal(payments.reconcile(host.address, 50_000n, 10_000n), false)
  assert.equal(payments.owedTo(host.address), 5_000n)
})
