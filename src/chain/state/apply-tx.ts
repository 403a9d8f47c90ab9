import type { SignatureVerifier } from '../../crypto/index.ts'
import { TREASURY_ADDRESS } from '../../params/index.ts'
import { MULTIPLIER_ONE } from '../economics.ts'
import { type SignedTx, verifyTxSignature } from '../tx.ts'
import type { TxCache } from '../tx-cache.ts'
import { applyEscrowClose, applyEscrowOpen, applyEscrowTopup, applyRedeem } from './apply-economy.ts'
import { applyGovPropose, applyGovVote } from './apply-governance.ts'
import { applyEvidence, applyStake, applyUnstake } from './apply-staking.ts'
import { StateDraft } from './draft.ts'
import { type ChainState, TxError } from './types.ts'

export interface TxContext {
  /** Height of the block the transaction goes into. */
  height: number
  verifier: SignatureVerifier
  /** Remembers signature results of the transactions it decoded (a node passes its own). */
  txCache?: TxCache
}

/**
 * Applies one signed transaction to a draft. On a TxError the draft is unchanged: every check
 * runs before the first write.
 */
export function applyTxToDraft(d: StateDraft, tx: SignedTx, ctx: TxContext): void {
  if (tx.chainId !== d.chainId) throw new TxError('WRONG_CHAIN', `transaction is for chain ${tx.chainId}, this is ${d.chainId}`)
  if (tx.from === TREASURY_ADDRESS || !ctx.verifier.isAddress(tx.from)) {
    throw new TxError('INVALID_ADDRESS', `sender ${tx.from} is not an Ed25519 address`)
  }
  const signatureValid = ctx.txCache != null ? ctx.txCache.signatureValid(tx, ctx.verifier) : verifyTxSignature(tx, ctx.verifier)
  if (!signatureValid) throw new TxError('BAD_SIGNATURE', `signature does not verify for sender ${tx.from}`)
  const sender = d.account(tx.from)
  if (tx.nonce !== sender.nonce) throw new TxError('WRONG_NONCE', `nonce ${tx.nonce}, expected ${sender.nonce}`)
  if (tx.fee < d.params.minTxFee) throw new TxError('FEE_TOO_LOW', `fee ${tx.fee} is under the minimum ${d.params.minTxFee}`)
  if (sender.balance < tx.fee) throw new TxError('INSUFFICIENT_BALANCE', `balance ${sender.balance} cannot pay the fee ${tx.fee}`)

  // every rule makes all its checks before its first write, and the fee is charged last, so a
  // refusal leaves the draft exactly as it was
  const body = tx.body
  const available = sender.balance - tx.fee
  switch (body.type) {
    case 'transfer': {
      if (body.amount <= 0n) throw new TxError('ZERO_AMOUNT', 'transfer amount must be positive')
      if (body.to !== TREASURY_ADDRESS && !ctx.verifier.isAddress(body.to)) {
        throw new TxError('INVALID_ADDRESS', `recipient ${body.to} is not an address`)
      }
      if (available < body.amount)
        throw new TxError('INSUFFICIENT_BALANCE', `balance ${available} after the fee is less than ${body.amount}`)
      chargeFee(d, tx)
      d.credit(tx.from, -body.amount)
      d.credit(body.to, body.amount)
      return
    }
    case 'stake':
      if (available < body.amount)
        throw new TxError('INSUFFICIENT_BALANCE', `balance ${available} after the fee is less than ${body.amount}`)
      applyStake(d, tx.from, body.role, body.amount)
      chargeFee(d, tx)
      return
    case 'unstake':
      applyUnstake(d, tx.from, body.role, body.amount, ctx.height)
      chargeFee(d, tx)
      return
    case 'register-model': {
      if (d.models.has(body.cid)) throw new TxError('MODEL_EXISTS', `model ${body.cid} is already registered`)
      if (body.parent != null && !d.models.has(body.parent))
        throw new TxError('UNKNOWN_PARENT', `parent model ${body.parent} is not registered`)
      if (body.parameters <= 0n) throw new TxError('ZERO_AMOUNT', 'parameter count must be positive')
      chargeFee(d, tx)
      d.models.set(body.cid, {
        name: body.name,
        cid: body.cid,
        parent: body.parent,
        parameters: body.parameters,
        owner: tx.from,
        height: ctx.height
      })
      d.markets.set(body.cid, { multiplier: MULTIPLIER_ONE, served: 0n })
      return
    }
    case 'evidence':
      applyEvidence(d, body.a, body.b, ctx.height, ctx.verifier)
      chargeFee(d, tx)
      return
    case 'escrow-open':
      applyEscrowOpen(d, tx.from, body.amount, available)
      chargeFee(d, tx)
      return
    case 'escrow-topup':
      applyEscrowTopup(d, tx.from, body.amount, available)
      chargeFee(d, tx)
      return
    case 'escrow-close':
      applyEscrowClose(d, tx.from, ctx.height)
      chargeFee(d, tx)
      return
    case 'redeem':
      applyRedeem(d, tx.from, body.vouchers, body.served, ctx.verifier)
      chargeFee(d, tx)
      return
    case 'gov-propose':
      applyGovPropose(d, tx.from, body.changes, body.applyHeight, ctx.height)
      chargeFee(d, tx)
      return
    case 'gov-vote':
      applyGovVote(d, tx.from, body.proposal, body.choice, ctx.height)
      chargeFee(d, tx)
      return
    default: {
      const unknown: never = body
      throw new TxError('MALFORMED', `unknown transaction type ${(unknown as { type: string }).type}`)
    }
  }
}

function chargeFee(d: StateDraft, tx: SignedTx): void {
  d.credit(tx.from, -tx.fee)
  d.payTreasury(tx.fee)
  d.bumpNonce(tx.from)
}

export type TxResult = { ok: true; state: ChainState } | { ok: false; error: TxError }

/** Applies one transaction to a state, returning the new state or why it was refused. Pure. */
export function applyTx(state: ChainState, tx: SignedTx, ctx: TxContext): TxResult {
  const d = new StateDraft(state)
  try {
    applyTxToDraft(d, tx, ctx)
  } catch (err) {
    if (err instanceof TxError) return { ok: false, error: err }
    throw err
  }
  return { ok: true, state: d.finish() }
}
