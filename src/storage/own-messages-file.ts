import { join } from 'node:path'
import type { ConsensusMessage, OwnMessages } from '../consensus/index.ts'
import { DurableFile, type FileCodec } from './durable-file.ts'

/**
 * The layout of earlier versions of the node, now only read, to take it over into
 * {@link SignerStateFiles} (`signer-state.ts`) on a validator's first start with this version.
 *
 * A validator's signed messages of the current height, durable before each leaves the node, in
 * two files: its votes (`own-messages.cbor`, rewritten before each vote) and its proposals
 * (`own-proposals.cbor`, rewritten only when it proposes). A proposal carries its whole block, so
 * keeping it apart spares each vote rewriting and fsyncing megabytes. A restarted validator gets
 * back the messages of the latest height either file holds.
 */
export class OwnMessagesFiles {
  private readonly votes: DurableFile<OwnMessages>
  private readonly proposals: DurableFile<OwnMessages>
  /** What the proposals file holds (the very message objects written). */
  private proposalsWritten: OwnMessages

  constructor(dir: string, codec: FileCodec<OwnMessages>) {
    this.votes = new DurableFile(join(dir, 'own-messages.cbor'), codec)
    this.proposals = new DurableFile(join(dir, 'own-proposals.cbor'), codec)
    this.proposalsWritten = this.proposals.read() ?? { height: -1, messages: [] }
  }

  /** The messages of the latest height on disk (proposals first), or undefined if none. */
  read(): OwnMessages | undefined {
    const votes = this.votes.read()
    const height = Math.max(votes?.height ?? -1, this.proposalsWritten.height)
    if (height < 0) return undefined
    const of = (own: OwnMessages | undefined): ConsensusMessage[] => (own?.height === height ? own.messages : [])
    return { height, messages: [...of(this.proposalsWritten), ...of(votes)] }
  }

  /** Makes `own` durable; returns once it is on disk. The proposals file is written only if they changed. */
  write(own: OwnMessages): void {
    const proposals = own.messages.filter((m) => m.kind === 'proposal')
    const written = this.proposalsWritten
    const unchanged =
      proposals.length === 0 ||
      (written.height === own.height &&
        written.messages.length === proposals.length &&
        proposals.every((m, i) => m === written.messages[i]))
    if (!unchanged) {
      this.proposals.write({ height: own.height, messages: proposals })
      this.proposalsWritten = { height: own.height, messages: proposals }
    }
    this.votes.write({ height: own.height, messages: own.messages.filter((m) => m.kind !== 'proposal') })
  }
}
