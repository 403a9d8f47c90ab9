import type { Address, SignatureVerifier } from '../../crypto/index.ts'
import { complexityOf, MULTIPLIER_ONE, nextMultiplier, splitPayment } from '../economics.ts'
import { type Voucher, verifyVoucher } from '../voucher.ts'
import type { StateDraft } from './draft.ts'
import { type ChainState, redeemedKey, TxError } from './types.ts'

/**
 * The economy's transitions: escrows, redemption of vouchers with the 70/20/10 split, and the
 * per-block update of every model's demand multiplier. Every function checks everything before
 * its first write, so a refused transaction changes nothing.
 */

export function applyEscrowOpen(d: StateDraft, payer: Address, amount: bigint, available: bigint): void {
  if (d.escrows.has(payer)) throw new TxError('ESCROW_EXISTS', `${payer} already has an escrow; top it up instead`)
  if (amount <= 0n) throw new TxError('ZERO_AMOUNT', 'an escrow must hold a positive amount')
  if (available < amount) throw new TxError('INSUFFICIENT_BALANCE', `balance ${available} after the fee is less than ${amount}`)
  d.credit(payer, -amount)
  d.escrows.set(payer, { balance: amount, releaseHeight: null })
}

export function applyEscrowTopup(d: StateDraft, payer: Address, amount: bigint, available: bigint): void {
  const escrow = d.escrows.get(payer)
  if (escrow == null) throw new TxError('NO_ESCROW', `${payer} has no escrow; open one first`)
  if (escrow.releaseHeight != null) throw new TxError('ESCROW_CLOSING', `the escrow of ${payer} is closing`)
  if (amount <= 0n) throw new TxError('ZERO_AMOUNT', 'a top-up must be positive')
  if (available < amount) throw new TxError('INSUFFICIENT_BALANCE', `balance ${available} after the fee is less than ${amount}`)
  d.credit(payer, -amount)
  d.escrows.set(payer, { balance: escrow.balance + amount, releaseHeight: null })
}

/** Starts closing: what is left returns to the payer `escrowCloseDelayBlocks` later; hosts may redeem until then. */
export function applyEscrowClose(d: StateDraft, payer: Address, height: number): void {
  const escrow = d.escrows.get(payer)
  if (escrow == null) throw new TxError('NO_ESCROW', `${payer} has no escrow`)
  if (escrow.releaseHeight != null) throw new TxError('ESCROW_CLOSING', `the escrow of ${payer} is already closing`)
  d.escrows.set(payer, { ...escrow, releaseHeight: height + d.params.escrowCloseDelayBlocks })
}

/** The price of `tokens` tokens of a registered model at its current multiplier (rounded up); a state or a draft. */
export function tokensValue(d: Pick<ChainState, 'params' | 'models' | 'markets'>, model: string, tokens: bigint): bigint {
  const record = d.models.get(model)
  const market = d.markets.get(model)
  if (record == null || market == null) throw new TxError('UNKNOWN_MODEL', `model ${model} is not registered`)
  const scaled = d.params.baseFee * market.multiplier * complexityOf(record.parameters) * tokens
  return (scaled + MULTIPLIER_ONE - 1n) / MULTIPLIER_ONE
}

/**
 * A host redeems its latest voucher from each payer. The chain pays, per voucher, the increase
 * over what it already paid this host from that escrow, capped by what the escrow holds, and
 * splits the total: host, validators pro rata to stake, treasury (rounding rule in
 * `splitPayment`). `served` reports the tokens these payments bought, per model, for the fee
 * market; it may not be worth more at current prices than what is paid.
 */
export function applyRedeem(
  d: StateDraft,
  host: Address,
  vouchers: Uint8Array[],
  served: ReadonlyArray<{ model: string; tokens: bigint }>,
  verifier: SignatureVerifier
): bigint {
  const plan: Array<{ voucher: Voucher; pay: bigint }> = []
  const payers = new Set<Address>()
  let total = 0n
  for (const [i, bytes] of vouchers.entries()) {
    let v: Voucher
    try {
      v = verifyVoucher(bytes, verifier)
    } catch (err) {
      throw new TxError('BAD_VOUCHER', `voucher ${i}: ${(err as Error).message}`)
    }
    if (v.chainId !== d.chainId) throw new TxError('BAD_VOUCHER', `voucher ${i} is for chain ${v.chainId}`)
    if (v.host !== host) throw new TxError('BAD_VOUCHER', `voucher ${i} pays ${v.host}, not the sender`)
    if (payers.has(v.payer)) throw new TxError('BAD_VOUCHER', `voucher ${i}: a second voucher from ${v.payer}; send only the latest`)
    payers.add(v.payer)
    const escrow = d.escrows.get(v.payer)
    if (escrow == null) throw new TxError('NO_ESCROW', `voucher ${i}: payer ${v.payer} has no escrow`)
    const increase = v.amount - (d.redeemed.get(redeemedKey(v.payer, host)) ?? 0n)
    if (increase <= 0n) throw new TxError('NOTHING_TO_REDEEM', `voucher ${i} from ${v.payer} is already paid`)
    const pay = increase < escrow.balance ? increase : escrow.balance
    if (pay === 0n) throw new TxError('NOTHING_TO_REDEEM', `voucher ${i}: the escrow of ${v.payer} is empty`)
    plan.push({ voucher: v, pay })
    total += pay
  }
  const seenModels = new Set<string>()
  let servedValue = 0n
  for (const s of served) {
    if (seenModels.has(s.model)) throw new TxError('MALFORMED', `model ${s.model} is listed twice in served`)
    seenModels.add(s.model)
    servedValue += tokensValue(d, s.model, s.tokens)
  }
  if (servedValue > total) {
    throw new TxError('LOAD_OVER_PAYMENT', `the served tokens are worth ${servedValue} at current prices, more than the ${total} redeemed`)
  }

  for (const { voucher, pay } of plan) {
    const escrow = d.escrows.get(voucher.payer)
    if (escrow == null) throw new Error('invariant: escrow vanished')
    d.escrows.set(voucher.payer, { ...escrow, balance: escrow.balance - pay })
    const key = redeemedKey(voucher.payer, host)
    d.redeemed.set(key, (d.redeemed.get(key) ?? 0n) + pay)
  }
  const split = splitPayment(
    total,
    {
      hostBps: BigInt(d.params.hostShareBps),
      validatorsBps: BigInt(d.params.validatorShareBps),
      treasuryBps: 10_000n - BigInt(d.params.hostShareBps) - BigInt(d.params.validatorShareBps)
    },
    d.validators.map((v) => ({ address: v.address, stake: v.power })),
    d.hostCarry.get(host) ?? 0n
  )
  d.credit(host, split.host)
  if (split.hostCarry === 0n) d.hostCarry.delete(host)
  else d.hostCarry.set(host, split.hostCarry)
  let toValidators = 0n
  for (const [address, amount] of split.validators) {
    d.credit(address, amount)
    toValidators += amount
  }
  d.payTreasury(split.treasury)
  d.totals = {
    feesRedeemed: d.totals.feesRedeemed + total,
    paidToHosts: d.totals.paidToHosts + split.host,
    paidToValidators: d.totals.paidToValidators + toValidators,
    paidToTreasury: d.totals.paidToTreasury + split.treasury
  }
  for (const s of served) {
    const market = d.markets.get(s.model)
    if (market != null) d.markets.set(s.model, { ...market, served: market.served + s.tokens })
  }
  return total
}

/** End of block: escrows due are released to their payers; every model's multiplier moves toward its load. */
export function settleBlock(d: StateDraft, height: number): void {
  for (const [payer, escrow] of d.escrows) {
    if (escrow.releaseHeight != null && escrow.releaseHeight <= height) {
      d.escrows.delete(payer)
      d.credit(payer, escrow.balance)
    }
  }
  const bounds = { min: d.params.minMultiplier, max: d.params.maxMultiplier }
  for (const [model, market] of d.markets) {
    const multiplier = nextMultiplier(market.multiplier, market.served, d.params.targetTokensPerBlock, bounds)
    if (multiplier !== market.multiplier || market.served !== 0n) d.markets.set(model, { multiplier, served: 0n })
  }
}
