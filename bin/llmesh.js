#!/usr/bin/env node
// The `llmesh` command. Runs the TypeScript sources through tsx's loader, polyfill first.
import { register } from 'tsx/esm/api'

register()
await import('../src/polyfill.ts')
const { main } = await import('../src/cli/main.ts')
await main(process.argv)
// a finished command exits even if a library left a timer or socket behind
process.exit(process.exitCode ?? 0)
