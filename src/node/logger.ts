import pino, { type DestinationStream, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { NodeConfig } from './config.ts'

/**
 * A structured logger: JSON lines, or readable lines for people (`log.format: "pretty"`).
 * Writes synchronously to stdout unless given a destination, so nothing is lost on exit.
 */
export function createLogger(config: NodeConfig['log'], destination?: DestinationStream): Logger {
  const options = { level: config.level }
  if (config.format === 'pretty') {
    return pino(
      options,
      pretty({
        sync: true,
        colorize: destination == null && process.stdout.isTTY === true,
        destination: destination ?? 1,
        singleLine: true
      })
    )
  }
  return pino(options, destination ?? pino.destination({ dest: 1, sync: true }))
}
