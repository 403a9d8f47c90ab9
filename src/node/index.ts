/**
 * Node: the composition root. Owns a node's home (config, identity key, lock), its logger and
 * metrics, and wires the layers for the roles the node plays, with a start()/stop() lifecycle.
 */

export type { TxStatus } from './chain-service.ts'
export { ChainService, GenesisFileError } from './chain-service.ts'
export type { ConfigErrorCode, ConfigInput, NodeConfig } from './config.ts'
export { ConfigError, ConfigSchema, loadConfig, parseConfig, renderConfig, saveConfig } from './config.ts'
export type { HomePaths, InitResult } from './home.ts'
export { HomeError, homePaths, initHome, lockHome, processAlive } from './home.ts'
export { createLogger } from './logger.ts'
export { NodeMetrics } from './metrics.ts'
export type { LlmeshNodeInit, NodeStatus } from './node.ts'
export { LlmeshNode, PortInUseError } from './node.ts'
