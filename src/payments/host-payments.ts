import type { Logger } from 'pino'
import { z } from 'zod'
import { type ChainState, decodeVoucher, MAX_REDEEM_VOUCHERS, redeemedKey, type TxBody, tokensValue } from '../chain/index.ts'
import { addressSchema } from '../chain/schema.ts'
import { decodeCanonical, encodeCanonical } from '../codec/index.ts'
import type { Address, SignatureVerifier } from '../crypto/index.ts'
import { LlmeshError } from '../errors/index.ts'
import { HOST_DEFAULTS } from '../params/index.ts'
import { type EscrowView, VoucherBook } from './voucher.ts'

export type PaymentErrorCode = 'payment_required' | 'insufficient_quota'

/** A job the payer cannot or did not pay for: `payment_required` (no or bad voucher), `insufficient_quota` (escrow too low). */
export class PaymentError extends LlmeshError<PaymentErrorCode> {}

/** The chain as the payment code needs it: the current state, and a way to send a transaction signed by this node. */
export interface PaymentsChain {
  readonly state: ChainState
  submitOwn(body: TxBody): { ok: boolean; error?: { message: string } }
}

export interface Admission {
  /** null: the model has no price on chain, the job runs unpaid. */
  payer: Address | null
  /**
   * Bills the finished job: its prompt + completion tokens at the model's price when it was
   * admitted (a price that rises while a job runs does not change its cost), now owed by the
   * payer. Returns the cost. Call once.
   */
  bill(promptTokens: number, completionTokens: number): bigint
  /** Call when the job ends (whatever happened). */
  release(): void
}

/**
 * What a host keeps of its payments across restarts: what each payer owes it by its books, and
 * the latest voucher of each payer (cumulative, so the latest carries the whole debt).
 */
export interface HostBooks {
  owed: Array<[Address, bigint]>
  vouchers: Uint8Array[]
}

/** Where a host's books live between runs: a `DurableFile` with {@link hostBooksCodec} in a node. */
export interface HostBooksFile {
  read(): HostBooks | undefined
  write(books: HostBooks): void
}

/** Payers a books file holds at most (the voucher book's own bound). */
const MAX_BOOKS_PAYERS = 100_000
const booksSchema = z
  .object({
    v: z.literal(1),
    owed: z
      .array(z.tuple([addressSchema, z.union([z.number().int().min(0), z.bigint().min(0n)]).transform((x) => BigInt(x))]))
      .max(MAX_BOOKS_PAYERS),
    vouchers: z.array(z.instanceof(Uint8Array)).max(MAX_BOOKS_PAYERS)
  })
  .strict()

/** Canonical DAG-CBOR of a host's books; decoding refuses anything else. */
export const hostBooksCodec = {
  encode: (books: HostBooks): Uint8Array => encodeCanonical({ v: 1, owed: books.owed, vouchers: books.vouchers }),
  decode: (bytes: Uint8Array): HostBooks => {
    const parsed = booksSchema.safeParse(decodeCanonical(bytes, 64 * 1024 * 1024))
    if (!parsed.success) throw new Error(`not a host's payment books: ${parsed.error.issues[0]?.message}`)
    return { owed: parsed.data.owed, vouchers: parsed.data.vouchers }
  }
}

/** Bytes of a voucher in a redeem transaction, and its CBOR overhead: what fits under the transaction size limit. */
const VOUCHER_WIRE_BYTES = 260
const REDEEM_OVERHEAD_BYTES = 1_024

export function escrowView(state: ChainState): EscrowView {
  return {
    escrowBalance: (payer) => {
      const e = state.escrows.get(payer)
      return e == null || e.releaseHeight != null ? null : e.balance
    },
    redeemed: (payer, host) => state.redeemed.get(redeemedKey(payer, host)) ?? 0n
  }
}

/** The most a job can cost: every byte of its prompt a token, plus every token it may generate. */
export function maxJobCost(state: ChainState, model: string, promptBytes: number, maxTokens: number): bigint {
  return tokensValue(state, model, BigInt(promptBytes + maxTokens + 8))
}

/**
 * A host's side of payments. Before a job: the voucher that came with it must cover everything
 * the payer owes this host so far (the edge pays each job with its next voucher, or with a `pay`
 * frame right after it), and the payer's escrow must hold what it owes plus the most this job
 * and its other running jobs can cost. After a job: its cost (prompt + completion tokens at the
 * model's current price) is added to what the payer owes. Now and then the host redeems its
 * latest voucher of every payer on chain, reporting the tokens it served per model.
 */
export class HostPayments {
  private readonly book: VoucherBook
  /** What each payer owes this host: the costs of every job billed. */
  private readonly owed = new Map<Address, bigint>()
  /** The most the running jobs of each payer can cost. */
  private readonly running = new Map<Address, bigint>()
  /** Tokens billed per model since the last redemption: the load the chain's fee market sees. */
  private readonly served = new Map<string, bigint>()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly c: { chain: PaymentsChain; verifier: SignatureVerifier; log: Logger; books?: HostBooksFile },
    private readonly init: { host: Address; redeemIntervalMs: number; verifyIntervalMs?: number; maxUnverifiedAmount?: bigint }
  ) {
    this.book = new VoucherBook(init.host, c.chain.state.chainId, c.verifier, {
      verifyIntervalMs: init.verifyIntervalMs ?? HOST_DEFAULTS.voucherVerifyIntervalMs,
      maxUnverifiedAmount: init.maxUnverifiedAmount ?? HOST_DEFAULTS.maxUnverifiedVoucherAmount
    })
  }

  /**
   * Takes back the books kept by the last run (vouchers re-checked; unreadable books are logged
   * and replaced), then redeems and saves the books every `redeemIntervalMs`.
   */
  start(): void {
    this.load()
    this.timer = setInterval(() => {
      this.redeem()
      this.save()
    }, this.init.redeemIntervalMs)
    this.timer.unref()
  }

  /** Redeems what is due and saves the books, so that a restart loses no earnings. */
  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.redeem()
    this.save()
  }

  private load(): void {
    let books: HostBooks | undefined
    try {
      books = this.c.books?.read()
    } catch (err) {
      // what they held is lost either way: vouchers sent from now on (cumulative) win it back
      this.c.log.error({ err: (err as Error).message }, 'payment books unreadable: starting with empty books')
      return
    }
    if (books == null) return
    for (const [payer, amount] of books.owed) this.owed.set(payer, amount)
    let refused = 0
    for (const bytes of books.vouchers) if (!this.book.restore(bytes)) refused++
    this.c.log.info({ payers: books.owed.length, vouchers: books.vouchers.length - refused, refused }, 'payment books restored')
  }

  private save(): void {
    try {
      this.c.books?.write({ owed: [...this.owed], vouchers: this.book.held() })
    } catch (err) {
      this.c.log.error({ err: (err as Error).message }, 'payment books not saved')
    }
  }

  /** Checks a job's payment before it runs; throws {@link PaymentError}. */
  admit(peer: Address, model: string, voucher: Uint8Array | undefined, promptBytes: number, maxTokens: number): Admission {
    const state = this.c.chain.state
    if (!state.models.has(model)) return { payer: null, bill: () => 0n, release: () => {} }
    if (voucher == null) {
      throw new PaymentError('payment_required', `model ${model} costs ${tokensValue(state, model, 1n)} per token: send a voucher`)
    }
    const view = escrowView(state)
    let payer: Address
    try {
      const decoded = decodeVoucher(voucher)
      payer = decoded.payer
      // an edge pays for its own jobs: a voucher naming another payer is someone else's money
      if (payer !== peer) throw new PaymentError('payment_required', `the voucher's payer ${payer} is not the peer that sent it`)
      this.book.accept(voucher, this.owed.get(payer) ?? 0n, view, decoded)
    } catch (err) {
      throw new PaymentError('payment_required', (err as Error).message)
    }
    const cost = maxJobCost(state, model, promptBytes, maxTokens)
    const unpaid = (this.owed.get(payer) ?? 0n) - view.redeemed(payer, this.init.host)
    const running = this.running.get(payer) ?? 0n
    const escrow = view.escrowBalance(payer) ?? 0n
    if (escrow < unpaid + running + cost) {
      throw new PaymentError(
        'insufficient_quota',
        `the escrow of ${payer} holds ${escrow}; it owes ${unpaid + running} and this job may cost ${cost}`
      )
    }
    this.running.set(payer, running + cost)
    let released = false
    return {
      payer,
      bill: (promptTokens, completionTokens) => {
        const tokens = BigInt(promptTokens + completionTokens)
        const cost = tokensValue(state, model, tokens)
        this.owed.set(payer, (this.owed.get(payer) ?? 0n) + cost)
        this.served.set(model, (this.served.get(model) ?? 0n) + tokens)
        return cost
      },
      release: () => {
        if (released) return
        released = true
        const left = (this.running.get(payer) ?? 0n) - cost
        if (left > 0n) this.running.set(payer, left)
        else this.running.delete(payer)
      }
    }
  }

  /** What `payer` owes this host in total, by its books. */
  owedBy(payer: Address): bigint {
    return this.owed.get(payer) ?? 0n
  }

  /**
   * True while `payer` owes this host more than its latest voucher, or the chain, has paid: a job
   * was billed and the voucher paying it (the `pay` frame after its answer) has not come yet.
   */
  awaitingPay(payer: Address): boolean {
    const owed = this.owed.get(payer) ?? 0n
    return owed > this.book.heldAmount(payer) && owed > escrowView(this.c.chain.state).redeemed(payer, this.init.host)
  }

  /** A voucher sent after a job (a `pay` frame): kept if it is later than the one held. */
  paid(peer: Address, voucher: Uint8Array): void {
    try {
      if (decodeVoucher(voucher).payer !== peer) throw new Error(`a voucher of another payer than ${peer}`)
      this.book.accept(voucher, 0n, escrowView(this.c.chain.state))
    } catch (err) {
      this.c.log.debug({ err: (err as Error).message }, 'voucher refused')
    }
  }

  /** Sends redeem transactions for every payer whose latest voucher pays more than the chain paid. */
  redeem(): number {
    const state = this.c.chain.state
    const vouchers = this.book.redeemable(escrowView(state))
    if (vouchers.length === 0) return 0
    const perTx = Math.max(
      1,
      Math.min(MAX_REDEEM_VOUCHERS, Math.floor((state.params.maxTxBytes - REDEEM_OVERHEAD_BYTES) / VOUCHER_WIRE_BYTES))
    )
    let sent = 0
    for (let i = 0; i < vouchers.length; i += perTx) {
      const batch = vouchers.slice(i, i + perTx)
      // the load goes with the first batch, scaled down if prices rose since it was billed
      const served = i === 0 ? this.takeServed(state, batch) : []
      const result = this.c.chain.submitOwn({ type: 'redeem', vouchers: batch, served })
      if (result.ok) sent++
      else this.c.log.warn({ err: result.error?.message }, 'redeem transaction refused')
    }
    this.book.prune(escrowView(state))
    return sent
  }

  private takeServed(state: ChainState, batch: Uint8Array[]): Array<{ model: string; tokens: bigint }> {
    const view = escrowView(state)
    let paying = 0n
    for (const bytes of batch) {
      const v = decodeVoucher(bytes)
      paying += v.amount - view.redeemed(v.payer, this.init.host)
    }
    const served: Array<{ model: string; tokens: bigint }> = []
    let value = 0n
    for (const [model, tokens] of this.served) {
      if (!state.models.has(model) || served.length >= 64) continue
      let t = tokens
      while (t > 0n && value + tokensValue(state, model, t) > paying) t /= 2n
      if (t === 0n) continue
      value += tokensValue(state, model, t)
      served.push({ model, tokens: t })
    }
    this.served.clear()
    return served
  }
}
