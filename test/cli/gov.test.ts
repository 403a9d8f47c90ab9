import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { type TestContext, test } from 'node:test'
import Fastify from 'fastify'
import { buildBlock, type ChainState, genesisState, Mempool } from '../../src/chain/index.ts'
import { parseGovChanges, parseGovVote, runGovList } from '../../src/cli/chain.ts'
import { loadIdentityKey, SignatureVerifier, signerFromPrivateKey } from '../../src/crypto/index.ts'
import { registerChainRoutes } from '../../src/gateway/index.ts'
import type { LlmeshNode } from '../../src/node/index.ts'
import { makeGenesis, makeSigners } from '../chain/fixtures.ts'
import { runCli } from '../cli-runner.ts'
import { tempDir } from '../helpers.ts'

const verifier = new SignatureVerifier()

/** Just enough of a node's chain for the chain routes: a state, a mempool, and blocks made on demand. */
class FakeChain {
  state: ChainState
  private pool: Mempool
  private readonly committed = new Map<string, number>()

  constructor(state: ChainState) {
    this.state = state
    this.pool = new Mempool(state, { maxTxs: 100, maxBytes: 1 << 20 }, verifier)
  }

  get mempoolSize(): number {
    return this.pool.size
  }

  nextNonce(address: string): number {
    return this.pool.nextNonce(address)
  }

  submit(raw: Uint8Array) {
    return this.pool.add(raw)
  }

  txStatus(hash: string) {
    const height = this.committed.get(hash)
    if (height != null) return { status: 'committed', height }
    return this.pool.has(hash) ? { status: 'pending' } : undefined
  }

  /** Makes the next block of what waits. */
  block(): void {
    const proposer = this.state.validators[0]?.address ?? ''
    const built = buildBlock(this.state, {
      proposer,
      time: this.state.lastBlockTime + 1_000,
      lastCommit: null,
      candidates: [...this.pool.candidates()],
      verifier
    })
    assert.equal(built.rejected.length, 0)
    this.state = built.state
    this.pool.onCommit(built.block.txs, built.state)
  }
}

async function serve(t: TestContext, chain: FakeChain): Promise<string> {
  const app = Fastify()
  registerChainRoutes(app, { chain } as unknown as LlmeshNode)
  t.after(() => app.close())
  return app.listen({ host: '127.0.0.1', port: 0 })
}

function capture(): { out: Writable; text: () => string } {
  let text = ''
  const out = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk)
      done()
    }
  })
  return { out, text: () => text }
}

test('gov arguments: --set NAME=VALUE and ID CHOICE are checked before anything is signed', () => {
  assert.deepEqual(parseGovChanges(['baseFee=20', 'minHostStake=0']), [
    ['baseFee', '20'],
    ['minHostStake', '0']
  ])
  assert.throws(() => parseGovChanges([]), /at least one change/)
  for (const bad of ['baseFee', 'baseFee=', 'baseFee=-1', 'baseFee=01', 'baseFee=1.5', '=3']) {
    assert.throws(() => parseGovChanges([bad]), /is not NAME=VALUE/, bad)
  }
  assert.deepEqual(parseGovVote('3', 'abstain'), { proposal: 3, choice: 'abstain' })
  assert.throws(() => parseGovVote('x', 'yes'), /x is not a proposal id/)
  assert.throws(() => parseGovVote('1', 'maybe'), /maybe is not a vote; vote yes, no, abstain/)
})

test('llmesh gov propose, vote and ls against a node: the proposal is signed, refused with the reason, voted and listed', async (t) => {
  const home = join(await tempDir(t), 'home')
  const init = await runCli(t, ['init', '--home', home, '--api-port', '0'])
  assert.equal(init.code, 0, init.stderr)
  const me = signerFromPrivateKey(await loadIdentityKey(join(home, 'identity.key')))
  // the key of --home and one other validator, each half of the power
  const other = makeSigners(1)
  const g = makeGenesis(other, 1)
  const chain = new FakeChain(
    genesisState(
      {
        ...g,
        params: { ...g.params, govVotingBlocks: 2 },
        accounts: [...g.accounts, { address: me.address, balance: '1000000' }],
        validators: [...g.validators, { address: me.address, stake: '10000' }]
      },
      verifier
    )
  )
  const api = await serve(t, chain)
  const cli = (args: string[]) => runCli(t, [...args, '--api', api, '--home', home])

  const empty = capture()
  await runGovList(api, false, empty.out)
  assert.match(
    empty.text(),
    /^height 0; voting lasts 2 blocks, quorum 33\.40% of the power, yes over 50\.00% of yes \+ no\nno proposals\n$/
  )

  // out of range: refused at submission, one line naming the parameter and its bounds
  const refused = await cli(['gov', 'propose', '--set', 'baseFee=9999999999999', '--at', '3', '--no-wait'])
  assert.equal(refused.code, 1)
  assert.match(
    refused.stderr,
    /^llmesh: error: \/mesh\/tx: the proposed baseFee = 9999999999999 is outside \[0, 1099511627776\] \(PARAM_OUT_OF_RANGE\)\n$/
  )

  const proposed = await cli(['gov', 'propose', '--set', 'baseFee=20', '--set', 'govQuorumBps=5000', '--at', '4', '--no-wait'])
  assert.equal(proposed.code, 0, proposed.stderr)
  assert.equal(JSON.parse(proposed.stdout).status, 'pending')
  chain.block()
  const voted = await cli(['gov', 'vote', '0', 'yes', '--no-wait'])
  assert.equal(voted.code, 0, voted.stderr)
  chain.block()

  const listed = capture()
  await runGovList(api, false, listed.out)
  assert.match(
    listed.text(),
    new RegExp(
      `#0  baseFee=20 govQuorumBps=5000  voting until 3, would apply at 4  yes 10000 no 0 abstain 0 of 20000 \\(passing so far\\)  by ${me.address}`
    )
  )
  chain.block()
  chain.block()
  assert.equal(chain.state.params.baseFee, 20n)
  const ls = capture()
  await runGovList(api, true, ls.out)
  const view = JSON.parse(ls.text())
  assert.equal(view.quorumBps, 5_000)
  assert.ok(view.governable.includes('baseFee') && !view.governable.includes('maxBlockBytes'))
  assert.deepEqual(view.proposals[0], {
    id: 0,
    proposer: me.address,
    changes: { baseFee: '20', govQuorumBps: '5000' },
    height: 1,
    votingEndHeight: 3,
    applyHeight: 4,
    status: 'applied',
    votes: { [me.address]: 'yes' },
    tally: { yes: '10000', no: '0', abstain: '0', total: '20000', final: true, passing: true },
    failure: null
  })
  const one = await fetch(`${api}/mesh/gov/proposals/0`)
  assert.deepEqual(await one.json(), view.proposals[0])
  const missing = await fetch(`${api}/mesh/gov/proposals/7`)
  assert.equal(missing.status, 404)
  assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found')
})
