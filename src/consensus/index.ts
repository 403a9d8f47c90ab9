/**
 * Consensus: Tendermint-style BFT with one-block finality. The core (`stepConsensus`) is a pure
 * step function of its state and one input that returns effects; `ConsensusDriver` is the thin
 * shell that checks, signs (through the double-sign guard), builds and applies blocks, and talks
 * to the network through an environment it is given. `sim/` runs whole networks from a seed.
 */
export type { ConsensusState } from './core.ts'
export { createConsensusState, locksOf, MAX_FUTURE_MESSAGES, MAX_ROUNDS_AHEAD, stepConsensus } from './core.ts'
export type { CommittedBlock, ConsensusMessage, DriverEnv, DriverInit, OwnMessages } from './driver.ts'
export { ConsensusDriver, DEFAULT_CLOCK_BOUNDS } from './driver.ts'
export type { DoubleSignGuard, SignedPoint } from './guard.ts'
export { allowSign, SIGN_STEP, StoredGuard } from './guard.ts'
export { decodeConsensusMessage, encodeConsensusMessage, MAX_CONSENSUS_MESSAGE_BYTES } from './messages.ts'
export { proposerFor } from './proposer.ts'
export type { ByzantineBehavior, SimOptions, SimResult } from './sim/simulation.ts'
export { runSimulation, SimViolation } from './sim/simulation.ts'
export type { ConsensusConfig, ConsensusEffect, ConsensusInput, ConsensusTimeouts, LockState, Step, TimeoutKind } from './types.ts'
