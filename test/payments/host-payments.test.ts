import assert from 'node:assert/strict'
import { test } from 'node:test'
import pino from 'pino'
import { type ChainState, decodeVoucher, genesisState, type TxBody } from '../../src/chain/index.ts'
import { SignatureVerifier, signerFromSeed } from '../../src/crypto/index.ts'
import { type HostBooks, HostPayments, hostBooksCodec, VoucherWallet } from '../../src/payments/index.ts'

const CHAIN = 'host-pay-test'
const edge = signerFromSeed(new Uint8Array(32).fill(1))
const host = signerFromSeed(new Uint8Array(32).fill(2))
const MODEL = 'bafybeibnbovqv4hnii2gr3amtlgglerw6wezpcwmr3ym62zbf3dxy5ccp4'
const verifier = new SignatureVerifier()
const log = pino({ level: 'silent' })

function stateWith(baseFee: string): ChainState {
  return genesisState(
    {
      chainId: CHAIN,
      genesisTime: 0,
      params: { minValidatorStake: '1', baseFee },
      accounts: [{ address: edge.address, balance: '1000' }],
      validators: [{ address: host.address, stake: '1' }],
      models: [{ name: 'tiny', cid: MODEL, parameters: '1000' }],
      escrows: [{ payer: edge.address, amount: '1000000' }]
    },
    verifier
  )
}

/** A chain whose state the test swaps, recording the transactions the host sends. */
function fakeChain(state: ChainState) {
  const sent: TxBody[] = []
  const submitOwn = (body: TxBody) => {
    sent.push(body)
    return { ok: true }
  }
  return { state, sent, submitOwn }
}

function memoryBooks() {
  let bytes: Uint8Array | undefined
  return {
    read: () => (bytes == null ? undefined : hostBooksCodec.decode(bytes)),
    write: (books: HostBooks) => {
      bytes = hostBooksCodec.encode(books)
    },
    get bytes() {
      return bytes
    },
    set bytes(b: Uint8Array | undefined) {
      bytes = b
    }
  }
}

test("a job's price is fixed when the host admits it: a price rise while it runs does not change its cost", () => {
  const chain = fakeChain(stateWith('10'))
  const payments = new HostPayments({ chain, verifier, log }, { host: host.address, redeemIntervalMs: 60_000 })
  const wallet = new VoucherWallet(edge, CHAIN)
  const running = payments.admit(edge.address, MODEL, wallet.voucher(host.address), 100, 16)
  chain.state = stateWith('30') // governance tripled the base fee while the job ran
  // (10 + 16) tokens at base fee 10, multiplier 1x, complexity 1
  assert.equal(running.bill(10, 16), 260n)
  running.release()
  wallet.charge(host.address, 260n)
  const next = payments.admit(edge.address, MODEL, wallet.voucher(host.address), 100, 16)
  assert.equal(next.bill(10, 16), 780n, 'a job admitted after the rise pays the new price')
  next.release()
  assert.equal(payments.owedBy(edge.address), 1_040n)
})

test('a host keeps its books across a restart: stop redeems and saves; the next run redeems the restored voucher', () => {
  const chain = fakeChain(stateWith('10'))
  const books = memoryBooks()
  const first = new HostPayments({ chain, verifier, log, books }, { host: host.address, redeemIntervalMs: 60_000 })
  first.start()
  const wallet = new VoucherWallet(edge, CHAIN)
  const job = first.admit(edge.address, MODEL, wallet.voucher(host.address), 100, 16)
  wallet.charge(host.address, job.bill(10, 16))
  job.release()
  first.paid(edge.address, wallet.voucher(host.address))
  first.stop()
  assert.equal(chain.sent.length, 1, 'stop redeems what is due')
  const [redeemed] = (chain.sent[0] as Extract<TxBody, { type: 'redeem' }>).vouchers
  assert.equal(decodeVoucher(redeemed as Uint8Array).amount, 260n)
  assert.ok(books.bytes != null, 'stop saves the books')

  // the redeem transaction was lost with the node; the next run redeems the same voucher
  const second = new HostPayments({ chain, verifier, log, books }, { host: host.address, redeemIntervalMs: 60_000 })
  second.start()
  assert.equal(second.owedBy(edge.address), 260n, 'what the payer owes is restored')
  assert.equal(second.redeem(), 1)
  assert.equal(decodeVoucher((chain.sent[1] as Extract<TxBody, { type: 'redeem' }>).vouchers[0] as Uint8Array).amount, 260n)
  // a voucher older than the one restored is refused
  assert.throws(() => second.admit(edge.address, MODEL, new VoucherWallet(edge, CHAIN, () => 0).voucher(host.address), 10, 1))
  second.stop()
})

test('restored books are checked: a forged voucher is dropped, unreadable books start empty', () => {
  const chain = fakeChain(stateWith('10'))
  const books = memoryBooks()
  const wallet = new VoucherWallet(edge, CHAIN)
  wallet.charge(host.address, 500n)
  const forged = Uint8Array.from(wallet.voucher(host.address))
  forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1
  books.write({ owed: [[edge.address, 500n]], vouchers: [forged] })
  const payments = new HostPayments({ chain, verifier, log, books }, { host: host.address, redeemIntervalMs: 60_000 })
  payments.start()
  assert.equal(payments.redeem(), 0, 'nothing redeemable: the only voucher is forged')
  payments.stop()

  books.bytes = new TextEncoder().encode('not cbor')
  const fresh = new HostPayments({ chain, verifier, log, books }, { host: host.address, redeemIntervalMs: 60_000 })
  fresh.start()
  assert.equal(fresh.owedBy(edge.address), 0n)
  fresh.stop()
  assert.deepEqual(hostBooksCodec.decode(books.bytes as Uint8Array), { owed: [], vouchers: [] }, 'replaced by valid books')

  assert.throws(() => hostBooksCodec.decode(hostBooksCodec.encode({ owed: [[edge.address, -1n]], vouchers: [] })))
})

test('awaitingPay: true from a billed job until a voucher, or the chain, covers what the payer owes', () => {
  const chain = fakeChain(stateWith('10'))
  const payments = new HostPayments({ chain, verifier, log }, { host: host.address, redeemIntervalMs: 60_000 })
  const wallet = new VoucherWallet(edge, CHAIN)
  assert.equal(payments.awaitingPay(edge.address), false, 'owes nothing')
  const job = payments.admit(edge.address, MODEL, wallet.voucher(host.address), 100, 16)
  assert.equal(payments.awaitingPay(edge.address), false, 'admitted, not billed yet')
  const cost = job.bill(10, 16)
  job.release()
  assert.equal(payments.awaitingPay(edge.address), true, 'billed; the voucher it came with paid only what was owed before')
  wallet.charge(host.address, cost - 1n)
  payments.paid(edge.address, wallet.voucher(host.address))
  assert.equal(payments.awaitingPay(edge.address), true, 'a voucher one unit short')
  wallet.charge(host.address, 1n)
  payments.paid(edge.address, wallet.voucher(host.address))
  assert.equal(payments.awaitingPay(edge.address), false, 'paid in full')
})
