import { join } from 'node:path'
import type { ConsensusMessage, LockState, OwnMessages, SignedPoint } from '../consensus/index.ts'
import { DurableFile, type FileCodec } from './durable-file.ts'
import { SlotFile } from './slot-file.ts'

/** What a validator must find again after a crash: what it last signed, its locks, its votes of the height. */
export interface SignerRecord {
  guard: SignedPoint | null
  locks: LockState | null
  /** The validator's votes (not proposals) of the latest height it signed at. */
  votes: OwnMessages
}

export interface SignerStateCodecs {
  record: FileCodec<SignerRecord>
  /** Proposals, each with its whole block (`own-proposals.cbor`). */
  own: FileCodec<OwnMessages>
}

/**
 * A validator's signing state on disk: the double-sign guard, the consensus locks and its own
 * votes of the height in **one** record (`signer-state.{0,1}`, one fsync per write), and its own
 * proposals apart (`own-proposals.cbor`, written only when it proposes, in the background: a
 * proposal carries its block, megabytes that a vote must not rewrite).
 *
 * Changes are gathered in memory (`recordGuard`, `recordLocks`, `recordOwn`) and made durable
 * together by `flush()`, which the node calls before **any** message leaves it: a signed vote goes
 * out only after the guard point, the locks and the vote are on disk, in one write instead of
 * three. A crash before the flush loses only what nobody has seen: a restarted validator finds a
 * guard at or beyond everything it sent, so it signs nothing conflicting.
 */
export class SignerStateFiles {
  private readonly record: SlotFile<SignerRecord>
  private readonly proposals: DurableFile<OwnMessages>
  private current: SignerRecord
  /** What the proposals file holds (the very message objects written). */
  private proposalsWritten: OwnMessages
  private proposalsPending: OwnMessages | null = null
  private dirty = false
  /** Background writes of the proposals file, in order, and the first that failed. */
  private proposalWrites: Promise<void> = Promise.resolve()
  private proposalFailure: Error | undefined

  /**
   * @param legacy the state kept by an earlier version of the node (separate guard, locks and
   * vote files), taken over when this record does not exist yet
   */
  constructor(dir: string, codecs: SignerStateCodecs, legacy?: () => SignerRecord | undefined) {
    this.record = new SlotFile(join(dir, 'signer-state'), codecs.record)
    this.proposals = new DurableFile(join(dir, 'own-proposals.cbor'), codecs.own)
    this.proposalsWritten = this.proposals.read() ?? { height: -1, messages: [] }
    const stored = this.record.read()
    if (stored != null) this.current = stored
    else {
      this.current = legacy?.() ?? { guard: null, locks: null, votes: { height: -1, messages: [] } }
      // taken over from the old files: durable in the new one before anything else happens
      if (this.current.guard != null || this.current.locks != null || this.current.votes.height >= 0) this.record.write(this.current)
    }
  }

  /** What was last signed (as of the last flush, or later). */
  get guard(): SignedPoint | null {
    return this.current.guard
  }

  get locks(): LockState | null {
    return this.current.locks
  }

  /** The validator's messages of the latest height on disk (proposals first), or undefined if none. */
  own(): OwnMessages | undefined {
    const votes = this.current.votes
    const proposals = this.proposalsWritten
    const height = Math.max(votes.height, proposals.height)
    if (height < 0) return undefined
    const of = (own: OwnMessages): ConsensusMessage[] => (own.height === height ? own.messages : [])
    return { height, messages: [...of(proposals), ...of(votes)] }
  }

  /** True when something recorded is not yet on disk. */
  get pending(): boolean {
    return this.dirty || this.proposalsPending != null
  }

  recordGuard(point: SignedPoint): void {
    this.current = { ...this.current, guard: point }
    this.dirty = true
  }

  recordLocks(locks: LockState): void {
    this.current = { ...this.current, locks }
    this.dirty = true
  }

  /** Records the validator's messages of `own.height`; the proposals are rewritten only if they changed. */
  recordOwn(own: OwnMessages): void {
    const proposals = own.messages.filter((m) => m.kind === 'proposal')
    const written = this.proposalsPending ?? this.proposalsWritten
    const unchanged =
      proposals.length === 0 ||
      (written.height === own.height &&
        written.messages.length === proposals.length &&
        proposals.every((m, i) => m === written.messages[i]))
    if (!unchanged) this.proposalsPending = { height: own.height, messages: proposals }
    this.current = { ...this.current, votes: { height: own.height, messages: own.messages.filter((m) => m.kind !== 'proposal') } }
    this.dirty = true
  }

  /**
   * Makes the record durable (one write, before any message leaves), and starts writing the
   * proposals in the background if they changed. The proposals file only lets a restarted
   * validator re-send its proposal instead of going silent (liveness): safety rests on the guard
   * point in the record, which names the proposal's block, so a restart cannot propose another
   * block at that height and round whether or not the proposal reached the file. Writing a
   * megabyte and syncing it off the event loop keeps it off the proposal's way out.
   */
  flush(): void {
    if (this.dirty) {
      this.record.write(this.current)
      this.dirty = false
    }
    const proposals = this.proposalsPending
    if (proposals != null) {
      this.proposalsPending = null
      this.proposalsWritten = proposals
      this.proposalWrites = this.proposalWrites.then(() =>
        this.proposals.writeAsync(proposals).catch((err: Error) => {
          this.proposalFailure ??= err
        })
      )
    }
    if (this.proposalFailure != null) throw this.proposalFailure
  }

  /** Waits for the background proposal writes; rethrows a failure. */
  async settle(): Promise<void> {
    await this.proposalWrites
    if (this.proposalFailure != null) throw this.proposalFailure
  }

  async close(): Promise<void> {
    this.flush()
    try {
      await this.settle()
    } finally {
      this.record.close()
    }
  }
}
