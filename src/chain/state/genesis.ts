import { z } from 'zod'
import type { SignatureVerifier } from '../../crypto/index.ts'
import { LlmeshError } from '../../errors/index.ts'
import { CHAIN_DEFAULTS, CHAIN_PARAM_BOUNDS, type ChainParams, MAX_AMOUNT, TREASURY_ADDRESS } from '../../params/index.ts'
import { MULTIPLIER_ONE } from '../economics.ts'
import { cidSchema } from '../schema.ts'
import { StateDraft } from './draft.ts'
import type { ChainState } from './types.ts'

export class GenesisError extends LlmeshError<'GENESIS_INVALID'> {}

const decimal = z
  .string()
  .regex(/^(0|[1-9][0-9]*)$/, 'a non-negative integer as a decimal string')
  .transform((s) => BigInt(s))
  .refine((v) => v <= MAX_AMOUNT, 'over the 64-bit limit')

const paramsSchema = z
  .object({
    blockTimeMs: z.number().int(),
    unbondingBlocks: z.number().int(),
    minValidatorStake: decimal,
    minHostStake: decimal,
    slashFractionBps: z.number().int(),
    evidenceMaxAgeBlocks: z.number().int(),
    maxValidators: z.number().int(),
    minTxFee: decimal,
    maxTxBytes: z.number().int(),
    maxBlockTxs: z.number().int(),
    maxBlockBytes: z.number().int(),
    baseFee: decimal,
    hostShareBps: z.number().int(),
    validatorShareBps: z.number().int(),
    targetTokensPerBlock: decimal,
    minMultiplier: decimal,
    maxMultiplier: decimal,
    escrowCloseDelayBlocks: z.number().int(),
    govVotingBlocks: z.number().int(),
    govQuorumBps: z.number().int(),
    govThresholdBps: z.number().int()
  })
  .strict()
  .partial()

/** The genesis file: JSON, amounts as decimal strings (they exceed what JSON numbers hold exactly). */
export const genesisSchema = z
  .object({
    chainId: z.string().min(1).max(64),
    genesisTime: z.number().int().min(0),
    params: paramsSchema.default({}),
    accounts: z.array(z.object({ address: z.string().max(64), balance: decimal }).strict()).max(100_000),
    validators: z
      .array(z.object({ address: z.string().max(64), stake: decimal }).strict())
      .min(1)
      .max(1_000),
    /** Host stakes from the start (on top of balances): hosts need the minimum host stake to be routed to. */
    hosts: z
      .array(z.object({ address: z.string().max(64), stake: decimal }).strict())
      .max(100_000)
      .default([]),
    /** Models registered from the start, owned by the treasury (a devnet registers its built-in model). */
    models: z
      .array(
        z
          .object({
            name: z
              .string()
              .min(1)
              .max(128)
              .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/),
            cid: cidSchema,
            parameters: decimal
          })
          .strict()
      )
      .max(10_000)
      .default([]),
    /** Escrows open from the start (a devnet funds one per edge), on top of the payers' balances. */
    escrows: z
      .array(z.object({ payer: z.string().max(64), amount: decimal }).strict())
      .max(100_000)
      .default([])
  })
  .strict()

export type GenesisInput = z.input<typeof genesisSchema>

/** Checks a parameter set against its bounds; returns the first violation or null. */
export function checkParams(p: ChainParams): string | null {
  for (const [key, [min, max]] of Object.entries(CHAIN_PARAM_BOUNDS) as Array<[keyof ChainParams, [unknown, unknown]]>) {
    const v = p[key]
    if ((v as number | bigint) < (min as number | bigint) || (v as number | bigint) > (max as number | bigint)) {
      return `params.${key} = ${v} is outside [${min}, ${max}]`
    }
  }
  if (p.hostShareBps + p.validatorShareBps > 10_000) {
    return `params.hostShareBps + params.validatorShareBps = ${p.hostShareBps + p.validatorShareBps} is over 10,000 basis points`
  }
  if (p.minMultiplier > p.maxMultiplier) return `params.minMultiplier ${p.minMultiplier} is over params.maxMultiplier ${p.maxMultiplier}`
  return null
}

/** The state at height 0 from a genesis document. Throws GenesisError naming the first problem. */
export function genesisState(input: unknown, verifier: SignatureVerifier): ChainState {
  const parsed = genesisSchema.safeParse(input)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new GenesisError('GENESIS_INVALID', `genesis: ${issue?.path.join('.') || '(top level)'}: ${issue?.message}`)
  }
  const g = parsed.data
  const params: ChainParams = { ...CHAIN_DEFAULTS, ...g.params }
  const bad = checkParams(params)
  if (bad != null) throw new GenesisError('GENESIS_INVALID', `genesis: ${bad}`)
  const d = new StateDraft({
    chainId: g.chainId,
    height: 0,
    lastBlockHash: '',
    lastBlockTime: g.genesisTime,
    params,
    accounts: new Map(),
    stakes: new Map(),
    unbonding: [],
    jailed: new Set(),
    models: new Map(),
    punished: new Set(),
    lastValidators: [],
    validators: [],
    nextValidators: [],
    escrows: new Map(),
    redeemed: new Map(),
    hostCarry: new Map(),
    markets: new Map(),
    totals: { feesRedeemed: 0n, paidToHosts: 0n, paidToValidators: 0n, paidToTreasury: 0n },
    proposals: new Map(),
    nextProposalId: 0
  })
  for (const a of g.accounts) {
    if (!verifier.isAddress(a.address)) throw new GenesisError('GENESIS_INVALID', `genesis: account ${a.address} is not an address`)
    if (d.accounts.has(a.address)) throw new GenesisError('GENESIS_INVALID', `genesis: account ${a.address} is listed twice`)
    d.accounts.set(a.address, { balance: a.balance, nonce: 0 })
  }
  for (const v of g.validators) {
    if (!verifier.isAddress(v.address)) throw new GenesisError('GENESIS_INVALID', `genesis: validator ${v.address} is not an address`)
    if (d.stake('validator', v.address) > 0n) throw new GenesisError('GENESIS_INVALID', `genesis: validator ${v.address} is listed twice`)
    if (v.stake < params.minValidatorStake) {
      throw new GenesisError(
        'GENESIS_INVALID',
        `genesis: validator ${v.address} stakes ${v.stake}, under minValidatorStake ${params.minValidatorStake}`
      )
    }
    d.setStake('validator', v.address, v.stake)
  }
  for (const h of g.hosts) {
    if (!verifier.isAddress(h.address)) throw new GenesisError('GENESIS_INVALID', `genesis: host ${h.address} is not an address`)
    if (d.stake('host', h.address) > 0n) throw new GenesisError('GENESIS_INVALID', `genesis: host ${h.address} is listed twice`)
    if (h.stake < params.minHostStake) {
      throw new GenesisError('GENESIS_INVALID', `genesis: host ${h.address} stakes ${h.stake}, under minHostStake ${params.minHostStake}`)
    }
    d.setStake('host', h.address, h.stake)
  }
  for (const m of g.models) {
    if (d.models.has(m.cid)) throw new GenesisError('GENESIS_INVALID', `genesis: model ${m.cid} is listed twice`)
    if (m.parameters <= 0n) throw new GenesisError('GENESIS_INVALID', `genesis: model ${m.cid} has no parameters`)
    d.models.set(m.cid, { name: m.name, cid: m.cid, parent: null, parameters: m.parameters, owner: TREASURY_ADDRESS, height: 0 })
    d.markets.set(m.cid, { multiplier: MULTIPLIER_ONE, served: 0n })
  }
  for (const e of g.escrows) {
    if (!verifier.isAddress(e.payer)) throw new GenesisError('GENESIS_INVALID', `genesis: escrow payer ${e.payer} is not an address`)
    if (d.escrows.has(e.payer)) throw new GenesisError('GENESIS_INVALID', `genesis: escrow of ${e.payer} is listed twice`)
    d.escrows.set(e.payer, { balance: e.amount, releaseHeight: null })
  }
  const set = d.computeValidatorSet()
  d.validators = set
  d.nextValidators = set
  return d.finish()
}
