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

test('a host takes cumulative vouchers that cover what is owed, and refuses every other kind with a reason', () => {
  const verifier = new SignatureVerifier()
  const book = new VoucherBook(host.address, CHAIN, verifier)
  const wallet = new VoucherWallet(payer, CHAIN)
  // the first voucher owes nothing yet: it names the payer and its escrow
  assert.equal(book.accept(wallet.voucher(host.address), 0n, chain(1_000n)).amount, 0n)
  wallet.charge(host.address, 100n)
  assert.equal(book.accept(wallet.voucher(host.address), 100n, chain(1_000n)).amount, 100n)
  wallet.charge(host.address, 50n)
  const v3 = wallet.voucher(host.address)
  assert.equal(book.accept(v3, 150n, chain(1_000n)).amount, 150n)
  // the same voucher again: stale
  assert.throws(() => book.accept(v3, 0n, chain(1_000n)), code('VOUCHER_STALE'))
  // one that does not cover what the host says is owed
  assert.throws(() => book.accept(wallet.voucher(host.address), 200n, chain(1_000n)), code('VOUCHER_UNDERPAID'))
  // beyond the escrow
  wallet.charge(host.address, 5_000n)
  assert.throws(() => book.accept(wallet.voucher(host.address), 0n, chain(1_000n)), code('VOUCHER_OVER_ESCROW'))
  // a lower amount with a later seq
  assert.throws(
    () => book.accept(signVoucher(payer, { chainId: CHAIN, host: host.address, amount: 10n, seq: 99 }), 0n, chain(1n << 60n)),
    code('VOUCHER_STALE')
  )
  // no escrow, another chain, another host, a forged signature, garbage
  const big = (chainId: string, to: string) => signVoucher(payer, { chainId, host: to, amount: 10_000n, seq: 99 })
  assert.throws(() => book.accept(big(CHAIN, host.address), 0n, chain(null)), code('VOUCHER_NO_ESCROW'))
  assert.throws(() => book.accept(big('other', host.address), 0n, chain(1n << 60n)), code('VOUCHER_WRONG_CHAIN'))
  assert.throws(() => book.accept(big(CHAIN, other.address), 0n, chain(1n << 60n)), code('VOUCHER_WRONG_HOST'))
  const forged = big(CHAIN, host.address)
  forged[forged.length - 1] = (forged[forged.length - 1] ?? 0) ^ 1
  assert.throws(() => book.accept(forged, 0n, chain(1n << 60n)), code('VOUCHER_BAD_SIGNATURE'))
  assert.throws(() => verifyVoucher(randomBytes(100), verifier), code('VOUCHER_MALFORMED'))
  // the refusals changed nothing: the latest voucher is still the 150 one
  assert.deepEqual(
    book.redeemable(chain(1_000n)).map((b) => verifyVoucher(b, verifier).amount),
    [150n]
  )
  // once the chain paid 150, nothing is left to redeem
  assert.deepEqual(book.redeemable(chain(1_000n, 150n)), [])
})

test('property: accepted vouchers only rise, cover what is required and stay within the escrow', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 1_000n }), fc.bigInt({ min: 0n, max: 3_000n })), { maxLength: 40 }),
      fc.bigInt({ min: 0n, max: 20_000n }),
      (steps, escrow) => {
        const verifier = new SignatureVerifier()
        const book = new VoucherBook(host.address, CHAIN, verifier)
        const wallet = new VoucherWallet(payer, CHAIN)
        let last = -1n
        for (const [charge, required] of steps) {
          wallet.charge(host.address, charge)
          try {
            const v = book.accept(wallet.voucher(host.address), required, chain(escrow))
            assert.ok(v.amount >= last && v.amount >= required && v.amount <= escrow)
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
