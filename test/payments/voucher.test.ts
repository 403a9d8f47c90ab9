import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import fc from 'fast-check'
import { SignatureVerifier, signerFromSeed } from '../../src/crypto/index.ts'
import { type EscrowView, signVoucher, VoucherBook, VoucherWallet, verifyVoucher } from '../../src/payments/index.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 200)
console.log(`voucher properties: FC_SEED=${seed} FC_RUNS=${runs}`)

const payer = signerFromSeed(new Uint8Array(32).fill(1))
const host = signerFromSeed(new Uint8Array(32).fill(2))
const other = signerFromSeed(new Uint8Array(32).fill(3))
const CHAIN = 'llmesh-test'

function chain(escrow: bigint | null, redeemed = 0n): EscrowView {
  return { escrowBalance: () => escrow, redeemed: () => redeemed }
}

const code = (c: string) => (err: unknown) => (err as { code: string }).code === c

test('a host takes cumulative vouchers that pay for each request, and refuses every other kind with a reason', () => {
  const verifier = new SignatureVerifier()
  const book = new VoucherBook(host.address, CHAIN, verifier)
  const wallet = new VoucherWallet(payer, CHAIN)
  const v1 = wallet.pay(host.address, 100n)
  assert.equal(book.accept(v1, 100n, chain(1_000n)).amount, 100n)
  const v2 = wallet.pay(host.address, 50n)
  assert.equal(book.accept(v2, 50n, chain(1_000n)).amount, 150n)
  // the same voucher again, or an older one: stale
  assert.throws(() => book.accept(v2, 0n, chain(1_000n)), code('VOUCHER_STALE'))
  assert.throws(() => book.accept(v1, 0n, chain(1_000n)), code('VOUCHER_STALE'))
  // paying less than the request costs
  assert.throws(() => book.accept(wallet.pay(host.address, 10n), 20n, chain(1_000n)), code('VOUCHER_UNDERPAID'))
  // beyond the escrow
  assert.throws(() => book.accept(wallet.pay(host.address, 5_000n), 1n, chain(1_000n)), code('VOUCHER_OVER_ESCROW'))
  // no escrow, another chain, another host, a forged signature
  assert.throws(
    () => book.accept(signVoucher(payer, { chainId: CHAIN, host: host.address, amount: 10_000n, seq: 99 }), 1n, chain(null)),
    code('VOUCHER_NO_ESCROW')
  )
  assert.throws(
    () => book.accept(signVoucher(payer, { chainId: 'other', host: host.address, amount: 10_000n, seq: 99 }), 1n, chain(1n << 60n)),
    code('VOUCHER_WRONG_CHAIN')
  )
  assert.throws(
    () => book.accept(signVoucher(payer, { chainId: CHAIN, host: other.address, amount: 10_000n, seq: 99 }), 1n, chain(1n << 60n)),
    code('VOUCHER_WRONG_HOST')
  )
  const forged = signVoucher(payer, { chainId: CHAIN, host: host.address, amount: 10_000n, seq: 99 })
  forged[forged.length - 1] = (forged[forged.length - 1] ?? 0) ^ 1
  assert.throws(() => book.accept(forged, 1n, chain(1n << 60n)), code('VOUCHER_BAD_SIGNATURE'))
  assert.throws(() => verifyVoucher(randomBytes(100), verifier), code('VOUCHER_MALFORMED'))
  // the refusals changed nothing: the latest voucher is still the 150 one
  assert.deepEqual(
    book.redeemable(chain(1_000n)).map((b) => verifyVoucher(b, verifier).amount),
    [150n]
  )
  // once the chain paid 150, nothing is left to redeem
  assert.deepEqual(book.redeemable(chain(1_000n, 150n)), [])
})

test('property: accepted vouchers never ask more than the escrow holds beyond what was redeemed, and only rise', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 1_000n }), fc.bigInt({ min: 0n, max: 1_000n })), { maxLength: 40 }),
      fc.bigInt({ min: 0n, max: 20_000n }),
      (steps, escrow) => {
        const verifier = new SignatureVerifier()
        const book = new VoucherBook(host.address, CHAIN, verifier)
        const wallet = new VoucherWallet(payer, CHAIN)
        let last = 0n
        for (const [pay, price] of steps) {
          const bytes = wallet.pay(host.address, pay)
          try {
            const v = book.accept(bytes, price, chain(escrow))
            assert.ok(v.amount >= last + price)
            assert.ok(v.amount <= escrow)
            last = v.amount
          } catch (err) {
            assert.ok((err as { code?: string }).code?.startsWith('VOUCHER_'))
          }
        }
        const held = book.redeemable(chain(escrow)).map((b) => verifyVoucher(b, verifier).amount)
        assert.deepEqual(held, last > 0n ? [last] : [])
      }
    ),
    { seed, numRuns: runs }
  )
})
