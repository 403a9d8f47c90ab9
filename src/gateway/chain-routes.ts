import type { FastifyInstance, FastifyReply } from 'fastify'
import { z } from 'zod'
import {
  blockHash,
  type ChainState,
  complexityOf,
  decodeTx,
  GOVERNABLE_PARAMS,
  type GovProposal,
  MULTIPLIER_ONE,
  tallyPasses,
  tallyProposal,
  tokensValue,
  totalSupply,
  txHash
} from '../chain/index.ts'
import type { ChainService, LlmeshNode } from '../node/index.ts'
import { STAKE_ROLES, TREASURY_ADDRESS } from '../params/index.ts'
import { apiError } from './errors.ts'

/** JSON for people and scripts: amounts as decimal strings, bytes as base64. */
export function toJson(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64')
  if (Array.isArray(value)) return value.map(toJson)
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), toJson(v)]))
  if (value != null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]))
  return value
}

const TxBody = z
  .object({
    tx: z
      .string()
      .min(1)
      .max(16 * 1024)
      .regex(/^[A-Za-z0-9+/=]+$/, 'base64')
  })
  .strict()

/** Most transactions one `POST /mesh/txs` carries (the body limit, 1 MiB, may bind first). */
export const MAX_SUBMIT_TXS = 1_024
/** Longest base64 text of one transaction (16 KiB: the largest transaction a chain may allow is 4 KiB by default). */
const MAX_TX_BASE64 = 16 * 1024
const BASE64 = /^[A-Za-z0-9+/=]+$/

/**
 * The transactions of a `POST /mesh/txs` body, decoded from base64; null if the body is not
 * `{"txs": [1 to MAX_SUBMIT_TXS base64 strings]}`. Checked by hand: zod per entry costs more
 * than the rest of the request.
 */
function txsOfBody(body: unknown): Uint8Array[] | null {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) return null
  const keys = Object.keys(body)
  const txs = (body as { txs?: unknown }).txs
  if (keys.length !== 1 || !Array.isArray(txs) || txs.length === 0 || txs.length > MAX_SUBMIT_TXS) return null
  const out: Uint8Array[] = []
  for (const t of txs) {
    if (typeof t !== 'string' || t.length === 0 || t.length > MAX_TX_BASE64 || !BASE64.test(t)) return null
    out.push(new Uint8Array(Buffer.from(t, 'base64')))
  }
  return out
}

/** A proposal for people: its changes as an object, and the tally (final once voting ended, else so far). */
function proposalView(p: GovProposal, s: ChainState) {
  const tally = p.tally ?? tallyProposal(p, s.jailed)
  return {
    id: p.id,
    proposer: p.proposer,
    changes: Object.fromEntries(p.changes),
    height: p.height,
    votingEndHeight: p.votingEndHeight,
    applyHeight: p.applyHeight,
    status: p.status,
    votes: Object.fromEntries(p.votes),
    tally: { ...tally, final: p.tally != null, passing: tallyPasses(tally, s.params) },
    failure: p.failure
  }
}

function noChain(reply: FastifyReply) {
  return reply
    .status(404)
    .send(apiError('this node runs no chain (chain.genesis is not set in its config)', 'invalid_request_error', 'no_chain'))
}

/** `/mesh/chain/*`, `/mesh/accounts/:address`, `/mesh/tx` and `/mesh/txs`: the chain as seen by this node. */
export function registerChainRoutes(app: FastifyInstance, node: LlmeshNode): void {
  const chainOf = (reply: FastifyReply): ChainService | undefined => {
    const chain = node.chain
    if (chain == null) void noChain(reply)
    return chain
  }

  app.get('/mesh/chain/status', async (_req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const s = chain.state
    return toJson({
      chainId: s.chainId,
      height: s.height,
      lastBlockHash: s.lastBlockHash,
      lastBlockTime: s.lastBlockTime,
      validators: s.validators.map((v) => ({ address: v.address, stake: v.power })),
      mempool: chain.mempoolSize,
      params: s.params
    })
  })

  app.get<{ Params: { height: string } }>('/mesh/chain/blocks/:height', async (req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const height = req.params.height === 'latest' ? chain.state.height : Number(req.params.height)
    if (!Number.isSafeInteger(height) || height < 1) {
      return reply
        .status(400)
        .send(apiError(`${req.params.height.slice(0, 40)} is not a block height`, 'invalid_request_error', 'invalid_height'))
    }
    const stored = await chain.readBlock(height)
    if (stored == null)
      return reply
        .status(404)
        .send(apiError(`no block at height ${height} (the chain is at ${chain.state.height})`, 'invalid_request_error', 'not_found'))
    const { block } = stored
    return toJson({
      height,
      hash: blockHash(block.header),
      header: block.header,
      txs: block.txs.map((raw) => ({ hash: txHash(raw), ...decodeTx(raw, Number.MAX_SAFE_INTEGER) })),
      lastCommit:
        block.lastCommit == null
          ? null
          : {
              height: block.lastCommit.height,
              round: block.lastCommit.round,
              blockHash: block.lastCommit.blockHash,
              signatures: block.lastCommit.precommits.length
            }
    })
  })

  app.get<{ Params: { address: string } }>('/mesh/accounts/:address', async (req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const s = chain.state
    const address = req.params.address
    const account = s.accounts.get(address)
    return toJson({
      address,
      balance: account?.balance ?? 0n,
      nonce: account?.nonce ?? 0,
      nextNonce: chain.nextNonce(address),
      stakes: Object.fromEntries(STAKE_ROLES.map((role) => [role, s.stakes.get(`${role}:${address}`) ?? 0n])),
      unbonding: s.unbonding
        .filter((u) => u.address === address)
        .map((u) => ({ role: u.role, amount: u.amount, releaseHeight: u.releaseHeight })),
      jailed: s.jailed.has(address),
      escrow: s.escrows.get(address) ?? null
    })
  })

  app.get('/mesh/fees', async (_req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const s = chain.state
    return toJson({
      height: s.height,
      baseFee: s.params.baseFee,
      multiplierScale: MULTIPLIER_ONE,
      targetTokensPerBlock: s.params.targetTokensPerBlock,
      models: [...s.models.values()].map((m) => ({
        cid: m.cid,
        name: m.name,
        parameters: m.parameters,
        complexity: complexityOf(m.parameters),
        multiplier: s.markets.get(m.cid)?.multiplier ?? MULTIPLIER_ONE,
        pricePerToken: tokensValue(s, m.cid, 1n),
        pricePer1kTokens: tokensValue(s, m.cid, 1_000n)
      }))
    })
  })

  app.get('/mesh/economics', async (_req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const s = chain.state
    let escrowed = 0n
    for (const e of s.escrows.values()) escrowed += e.balance
    return toJson({
      height: s.height,
      totalSupply: totalSupply(s),
      treasury: { address: TREASURY_ADDRESS, balance: s.accounts.get(TREASURY_ADDRESS)?.balance ?? 0n },
      escrowed,
      split: {
        hostBps: s.params.hostShareBps,
        validatorsBps: s.params.validatorShareBps,
        treasuryBps: 10_000 - s.params.hostShareBps - s.params.validatorShareBps
      },
      ...s.totals
    })
  })

  app.get('/mesh/gov/proposals', async (_req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const s = chain.state
    return toJson({
      height: s.height,
      votingBlocks: s.params.govVotingBlocks,
      quorumBps: s.params.govQuorumBps,
      thresholdBps: s.params.govThresholdBps,
      governable: GOVERNABLE_PARAMS,
      proposals: [...s.proposals.values()].sort((a, b) => b.id - a.id).map((p) => proposalView(p, s))
    })
  })

  app.get<{ Params: { id: string } }>('/mesh/gov/proposals/:id', async (req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const p = /^(0|[1-9][0-9]{0,14})$/.test(req.params.id) ? chain.state.proposals.get(Number(req.params.id)) : undefined
    if (p == null)
      return reply
        .status(404)
        .send(
          apiError(
            `no proposal ${req.params.id.slice(0, 40)} (finished ones are kept for a while only)`,
            'invalid_request_error',
            'not_found'
          )
        )
    return toJson(proposalView(p, chain.state))
  })

  app.post('/mesh/tx', async (req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const body = TxBody.safeParse(req.body)
    if (!body.success)
      return reply
        .status(400)
        .send(apiError('body must be {"tx": "<base64 of the signed transaction>"}', 'invalid_request_error', 'invalid_body'))
    const result = chain.submit(new Uint8Array(Buffer.from(body.data.tx, 'base64')))
    if (!result.ok) {
      const status = result.error.code === 'MEMPOOL_FULL' ? 503 : 400
      return reply.status(status).send(apiError(result.error.message, 'invalid_request_error', result.error.code))
    }
    return reply.status(202).send({ hash: result.hash, status: 'pending' })
  })

  app.post('/mesh/txs', async (req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const txs = txsOfBody(req.body)
    if (txs == null)
      return reply
        .status(400)
        .send(
          apiError(
            `body must be {"txs": ["<base64 of a signed transaction>", ...]} with 1 to ${MAX_SUBMIT_TXS} transactions`,
            'invalid_request_error',
            'invalid_body'
          )
        )
    // in order: a sender's transactions may follow each other in one request
    let accepted = 0
    const results = txs.map((raw) => {
      const result = chain.submit(raw)
      if (result.ok) {
        accepted++
        return { hash: result.hash, status: 'pending' as const }
      }
      return { hash: result.hash, status: 'rejected' as const, code: result.error.code, reason: result.error.message }
    })
    return reply.status(200).send({ accepted, rejected: txs.length - accepted, results })
  })

  app.get<{ Params: { hash: string } }>('/mesh/tx/:hash', async (req, reply) => {
    const chain = chainOf(reply)
    if (chain == null) return reply
    const status = chain.txStatus(req.params.hash)
    if (status == null)
      return reply
        .status(404)
        .send(apiError(`transaction ${req.params.hash.slice(0, 80)} is unknown to this node`, 'invalid_request_error', 'not_found'))
    return { hash: req.params.hash, ...status }
  })
}
