import { constants } from 'node:fs'
import { link, mkdir, open, readFile, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { PrivateKey } from '@libp2p/interface'
import { createIdentityKey } from '../crypto/index.ts'
import { isSystemError, LlmeshError } from '../errors/index.ts'
import { type ConfigInput, type NodeConfig, parseConfig, renderConfig } from './config.ts'

/** The files of a node's home directory. */
export interface HomePaths {
  home: string
  config: string
  key: string
  pid: string
}

export function homePaths(home: string): HomePaths {
  const dir = resolve(home)
  return {
    home: dir,
    config: join(dir, 'config.json'),
    key: join(dir, 'identity.key'),
    pid: join(dir, 'node.pid')
  }
}

export class HomeError extends LlmeshError<'HOME_EXISTS' | 'HOME_LOCKED'> {}

export interface InitResult {
  paths: HomePaths
  config: NodeConfig
  privateKey: PrivateKey
}

/**
 * Creates a node home: a config file and a new identity key. Writes nothing if either exists,
 * and removes the config again if the key cannot be written, so a home is whole or absent.
 */
export async function initHome(home: string, config: ConfigInput = {}): Promise<InitResult> {
  const paths = homePaths(home)
  const parsed = parseConfig(config, paths.config)
  await mkdir(paths.home, { recursive: true, mode: 0o700 })
  const tmp = `${paths.config}.${process.pid}.tmp`
  await writeFile(tmp, renderConfig(parsed), { mode: 0o644 })
  try {
    await link(tmp, paths.config)
  } catch (err) {
    if (isSystemError(err, 'EEXIST')) {
      throw new HomeError('HOME_EXISTS', `${paths.home} is already a node home (${paths.config} exists)`, {
        hint: 'refusing to overwrite it; start it with `llmesh start --home`, or choose another --home'
      })
    }
    throw err
  } finally {
    await unlink(tmp).catch(() => {})
  }
  try {
    const privateKey = await createIdentityKey(paths.key)
    return { paths, config: parsed, privateKey }
  } catch (err) {
    await unlink(paths.config).catch(() => {})
    throw err
  }
}

/**
 * Takes the home's pid file so two nodes never run on one home (one key, one store).
 * A pid file left by a killed node is taken over. Returns the release function.
 */
export async function lockHome(paths: HomePaths): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(paths.pid, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644)
      await fh.writeFile(`${process.pid}\n`)
      await fh.close()
      return async () => {
        await unlink(paths.pid).catch(() => {})
      }
    } catch (err) {
      if (!isSystemError(err, 'EEXIST')) throw err
      const owner = Number.parseInt(await readFile(paths.pid, 'utf8').catch(() => ''), 10)
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        throw new HomeError('HOME_LOCKED', `another llmesh node (pid ${owner}) is running with home ${paths.home}`, {
          hint: `stop it first, or remove ${paths.pid} if that process is not llmesh`
        })
      }
      await unlink(paths.pid).catch(() => {})
    }
  }
  throw new HomeError('HOME_LOCKED', `could not take ${paths.pid}`, { hint: 'check the directory permissions' })
}

/** Whether a process with this pid exists (one we may not signal still counts). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return isSystemError(err, 'EPERM')
  }
}
