import { buildBlock, type ChainState, signProposal, signVote } from '../../src/chain/index.ts'
import type { SignatureVerifier, Signer } from '../../src/crypto/index.ts'

/** A validator's signed messages at `height`, round 0: a proposal with its (empty) block, a prevote and a precommit for it. */
export function signedMessages(state: ChainState, signer: Signer, verifier: SignatureVerifier, height: number) {
  const built = buildBlock(state, { proposer: signer.address, time: 1, lastCommit: null, candidates: [], verifier })
  const proposal = {
    kind: 'proposal' as const,
    proposal: signProposal(
      { chainId: state.chainId, height, round: 0, validRound: -1, blockHash: built.hash, proposer: signer.address },
      signer
    ),
    block: built.block
  }
  const vote = (type: 'prevote' | 'precommit') => ({
    kind: 'vote' as const,
    vote: signVote({ chainId: state.chainId, height, round: 0, type, blockHash: built.hash, validator: signer.address }, signer)
  })
  return { hash: built.hash, proposal, prevote: vote('prevote'), precommit: vote('precommit') }
}
