import type { Logger } from 'pino'
import { type ChainState, decodeVoucher, MAX_REDEEM_VOUCHERS, redeemedKey, type TxBody, tokensValue } from '../chain/index.ts'
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
  /** Call when the job ends (whatever happened). */
  release(): void
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
    private readonly c: { chain: PaymentsChain; verifier: SignatureVerifier; log: Logger },
    private readonly init: { host: Address; redeemIntervalMs: number; verifyIntervalMs?: number; maxUnverifiedAmount?: bigint }
  ) {
    this.book = new VoucherBook(init.host, c.chain.state.chainId, c.verifier, {
      verifyIntervalMs: init.verifyIntervalMs ?? HOST_DEFAULTS.voucherVerifyIntervalMs,
      maxUnverifiedAmount: init.maxUnverifiedAmount ?? HOST_DEFAULTS.maxUnverifiedVoucherAmount
    })
  }

  start(): void {
    this.timer = setInterval(() => this.redeem(), this.init.redeemIntervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** Checks a job's payment before it runs; throws {@link PaymentError}. */
  admit(peer: Address, model: string, voucher: Uint8Array | undefined, promptBytes: number, maxTokens: number): Admission {
    const state = this.c.chain.state
    if (!state.models.has(model)) return { payer: null, release: () => {} }
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

  /** Bills a finished job: returns its cost, now owed by the payer. */
  bill(payer: Address | null, model: string, promptTokens: number, completionTokens: number): bigint {
    if (payer == null) return 0n
    const tokens = BigInt(promptTokens + completionTokens)
    const cost = tokensValue(this.c.chain.state, model, tokens)
    this.owed.set(payer, (this.owed.get(payer) ?? 0n) + cost)
    this.served.set(model, (this.served.get(model) ?? 0n) + tokens)
    return cost
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
