import type { Address, Signer } from '../crypto/index.ts'
import { HOST_DEFAULTS } from '../params/index.ts'
import { escrowView, maxJobCost, PaymentError, type PaymentsChain } from './host-payments.ts'
import { VoucherWallet } from './voucher.ts'

export interface JobPayment {
  /** The voucher to send with the job (covers everything owed to the host so far). */
  voucher: Uint8Array
  /** The most the job may cost; a receipt asking more is refused. */
  maxCost: bigint
}

/**
 * An edge's side of payments: before a job, checks that its escrow can cover what it owes every
 * host plus the most this job can cost (else `insufficient_quota`, the OpenAI 402), and signs
 * a voucher for what it owes the host; after it, accepts the cost from the host's receipt (at
 * most the job's maximum at a price up to one block's rise higher) and signs the voucher that
 * pays it.
 */
export class EdgePayments {
  private readonly wallet: VoucherWallet

  constructor(
    private readonly c: { chain: PaymentsChain; signer: Signer },
    chainId: string
  ) {
    this.wallet = new VoucherWallet(c.signer, chainId)
  }

  /** The payment for a job to `host`, or undefined if the model has no price on chain. */
  prepare(host: Address, model: string, promptBytes: number, maxTokens: number): JobPayment | undefined {
    const state = this.c.chain.state
    if (!state.models.has(model)) return undefined
    const view = escrowView(state)
    const self = this.c.signer.address
    const escrow = view.escrowBalance(self)
    if (escrow == null) {
      throw new PaymentError('insufficient_quota', `this edge (${self}) has no open escrow to pay hosts from`, {
        hint: 'open one: llmesh tx escrow open --amount N'
      })
    }
    let owed = 0n
    for (const h of this.wallet.hosts()) owed += this.wallet.owedTo(h) - view.redeemed(self, h)
    const maxCost = maxJobCost(state, model, promptBytes, maxTokens)
    if (escrow - owed < maxCost) {
      throw new PaymentError(
        'insufficient_quota',
        `the escrow holds ${escrow - owed} after what is owed; this request may cost ${maxCost}`,
        {
          hint: 'top it up: llmesh tx escrow topup --amount N'
        }
      )
    }
    return { voucher: this.wallet.voucher(host), maxCost }
  }

  /**
   * Catches up with what `host` says this edge owes it (told when a session opens): after a
   * restart the edge's running totals start from 0 while the host still counts the jobs it ran.
   * The edge takes the host's word for at most `maxAdoptedDebt` beyond what it knows it owes
   * (its own total, or what the chain already paid that host); false: the host claims more,
   * and the edge does not use it.
   */
  reconcile(host: Address, claimed: bigint, maxAdoptedDebt: bigint = HOST_DEFAULTS.maxUnverifiedVoucherAmount): boolean {
    const known = this.wallet.owedTo(host)
    if (claimed <= known) return true
    const paid = escrowView(this.c.chain.state).redeemed(this.c.signer.address, host)
    let floor = known
    if (paid > floor) floor = paid
    if (claimed - floor > maxAdoptedDebt) return false
    this.wallet.charge(host, claimed - known)
    return true
  }

  /** Accepts a job's cost from its receipt and returns the voucher that pays it. Throws if the host asks too much. */
  settle(host: Address, payment: JobPayment, cost: bigint): Uint8Array {
    // the price may have risen by one block's step (12.5%) since the job started
    const limit = payment.maxCost + payment.maxCost / 8n + 1n
    if (cost > limit) throw new PaymentError('payment_required', `host ${host} asks ${cost} for a job that could cost at most ${limit}`)
    this.wallet.charge(host, cost)
    return this.wallet.voucher(host)
  }

  /** What this edge owes `host` in total. */
  owedTo(host: Address): bigint {
    return this.wallet.owedTo(host)
  }
}
