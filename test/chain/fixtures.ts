import {
  type Block,
  type ChainState,
  type Commit,
  encodeTx,
  type GenesisInput,
  genesisState,
  type SignedTx,
  type SignedVote,
  signTx,
  signVote,
  type TxBody
} from '../../src/chain/index.ts'
import { SignatureVerifier, type Signer, signerFromSeed } from '../../src/crypto/index.ts'

export const CHAIN_ID = 'llmesh-test'

/** Deterministic signers: seed i is 32 bytes of (i + 1). */
export function makeSigners(n: number): Signer[] {
  return Array.from({ length: n }, (_, i) => signerFromSeed(new Uint8Array(32).fill(i + 1)))
}

export function makeGenesis(signers: Signer[], validators: number, overrides: Partial<GenesisInput> = {}): GenesisInput {
  return {
    chainId: CHAIN_ID,
    genesisTime: 1_700_000_000_000,
    params: { minValidatorStake: '1000', minHostStake: '100', unbondingBlocks: 3, slashFractionBps: 1000 },
    accounts: signers.map((s) => ({ address: s.address, balance: '1000000' })),
    validators: signers.slice(0, validators).map((s) => ({ address: s.address, stake: '10000' })),
    ...overrides
  }
}

export function makeState(signers: Signer[], validators: number, verifier = new SignatureVerifier()): ChainState {
  return genesisState(makeGenesis(signers, validators), verifier)
}

export function tx(state: ChainState, signer: Signer, body: TxBody, fee = 1n, nonceOffset = 0): SignedTx {
  const nonce = (state.accounts.get(signer.address)?.nonce ?? 0) + nonceOffset
  return signTx({ chainId: state.chainId, from: signer.address, nonce, fee, body }, signer)
}

export function txBytes(state: ChainState, signer: Signer, body: TxBody, fee = 1n): Uint8Array {
  return encodeTx(tx(state, signer, body, fee))
}

/** Precommits of every signer in `validators` for a block: a commit for it. */
export function makeCommit(block: Block, hash: string, round: number, validators: Signer[]): Commit {
  const precommits: SignedVote[] = validators.map((s) =>
    signVote(
      { chainId: block.header.chainId, height: block.header.height, round, type: 'precommit', blockHash: hash, validator: s.address },
      s
    )
  )
  return { height: block.header.height, round, blockHash: hash, precommits }
}
