import type { ImporterOptions } from 'ipfs-unixfs-importer'
import { rabin } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MODEL_IMPORT } from '../params/index.ts'

/** The chunker in kubo's `--chunker` syntax: `ipfs add --cid-version 1 --raw-leaves --chunker <this>`. */
export const MODEL_CHUNKER = `rabin-${MODEL_IMPORT.rabinMinChunkBytes}-${MODEL_IMPORT.rabinAvgChunkBytes}-${MODEL_IMPORT.rabinMaxChunkBytes}`

/**
 * The importer options every model is imported with (docs/models.md): CIDv1, raw leaves,
 * sha2-256, the rabin chunker of `MODEL_IMPORT`, a balanced layout. Every value is spelled out
 * rather than left to the importer's defaults, so an upgrade of the importer cannot change CIDs
 * silently. A new chunker per import: it carries the rolling-hash state.
 */
export function modelImporterOptions(): ImporterOptions {
  return {
    cidVersion: MODEL_IMPORT.cidVersion,
    rawLeaves: MODEL_IMPORT.rawLeaves,
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: false,
    chunker: rabin({
      minChunkSize: MODEL_IMPORT.rabinMinChunkBytes,
      avgChunkSize: MODEL_IMPORT.rabinAvgChunkBytes,
      maxChunkSize: MODEL_IMPORT.rabinMaxChunkBytes,
      window: MODEL_IMPORT.rabinWindowBytes
    }),
    layout: balanced({ maxChildrenPerNode: MODEL_IMPORT.maxChildrenPerNode })
  }
}
