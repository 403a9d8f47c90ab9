import { LlmeshError } from '../errors/index.ts'

/** A router setting that is out of range (the message names it and the range). */
export class RouterConfigError extends LlmeshError<'INVALID_ROUTER_CONFIG'> {
  readonly setting: string
  readonly value: unknown

  constructor(setting: string, value: unknown, range: string) {
    super('INVALID_ROUTER_CONFIG', `router setting ${setting} = ${String(value)} is out of range`, {
      hint: `give ${range}, or leave it out to use ROUTING_DEFAULTS.${setting}`
    })
    this.setting = setting
    this.value = value
  }
}
