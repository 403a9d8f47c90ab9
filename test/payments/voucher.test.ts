import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import fc from 'fast-check'
import { decodeVoucher } from '../../src/chain/index.ts'
import { encodeCanonical } from '../../src/codec/index.ts'
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

/** The same voucher with one bit of its signature flipped. */
function forgeSig(bytes: Uint8Array): Uint8Array {
  const v = decodeVoucher(bytes)
  const sig = v.sig.slice()
  sig[0] = (sig[0] ?? 0) ^ 1
  return encodeCanonical({ ...v, sig })
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
    () => book.accept(signVoucher(payer, { chainId: CHAIN, host: host.address, amount: 10n, seq: 2 ** 52 }), 0n, chain(1n << 60n)),
    code('VOUCHER_STALE')
  )
  // no escrow, another chain, another host, a forged signature, garbage
  const big = (chainId: string, to: string) => signVoucher(payer, { chainId, host: to, amount: 10_000n, seq: 2 ** 52 })
  assert.throws(() => book.accept(big(CHAIN, host.address), 0n, chain(null)), code('VOUCHER_NO_ESCROW'))
  assert.throws(() => book.accept(big('other', host.address), 0n, chain(1n << 60n)), code('VOUCHER_WRONG_CHAIN'))
  assert.throws(() => book.accept(big(CHAIN, other.address), 0n, chain(1n << 60n)), code('VOUCHER_WRONG_HOST'))
  assert.throws(() => book.accept(forgeSig(big(CHAIN, host.address)), 0n, chain(1n << 60n)), code('VOUCHER_BAD_SIGNATURE'))
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

test('signatures checked now and then: a forged voucher costs the host at most maxUnverifiedAmount, then the payer is refused', () => {
  const verifier = new SignatureVerifier()
  let clock = 0
  const book = new VoucherBook(host.address, CHAIN, verifier, { now: () => clock, verifyIntervalMs: 10_000, maxUnverifiedAmount: 1_000n })
  const escrow = chain(1_000_000n)
  const signed = (amount: bigint, seq: number) => signVoucher(payer, { chainId: CHAIN, host: host.address, amount, seq })
  const forge = (amount: bigint, seq: number) => forgeSig(signed(amount, seq))
  // the first voucher of a payer is always checked
  assert.throws(() => book.accept(forge(10n, 1), 0n, escrow), code('VOUCHER_BAD_SIGNATURE'))
  book.accept(signed(100n, 1), 0n, escrow)
  // a forged voucher far beyond the last checked one is checked at once
  assert.throws(() => book.accept(forge(5_000n, 2), 0n, escrow), code('VOUCHER_BAD_SIGNATURE'))
  // a small step is taken unchecked...
  book.accept(forge(600n, 2), 0n, escrow)
  // ...but redemption checks it: the host redeems the last good voucher and refuses the payer from now on
  assert.deepEqual(
    book.redeemable(escrow).map((b) => verifyVoucher(b, verifier).amount),
    [100n]
  )
  assert.throws(() => book.accept(signed(700n, 3), 0n, escrow), code('VOUCHER_BAD_SIGNATURE'))
  // an honest payer's unchecked vouchers check out at redemption, and the interval forces a check
  const honest = signerFromSeed(new Uint8Array(32).fill(9))
  const v = (amount: bigint, seq: number) => signVoucher(honest, { chainId: CHAIN, host: host.address, amount, seq })
  book.accept(v(10n, 1), 0n, escrow)
  book.accept(v(20n, 2), 0n, escrow)
  clock = 20_000
  book.accept(v(30n, 3), 0n, escrow)
  assert.ok(book.redeemable(escrow).some((b) => verifyVoucher(b, verifier).amount === 30n))
})
