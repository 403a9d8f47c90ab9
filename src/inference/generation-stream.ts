import type { Generation, GenerationResult } from './engine.ts'

/**
 * The producer side of a {@link Generation}: an engine pushes pieces and then finishes or fails
 * it exactly once; later calls are ignored. Pieces wait in memory until the consumer takes them
 * (bounded by the request's maxTokens). A consumer that leaves its loop early calls `onLeave`,
 * which an engine uses to cancel the work.
 */
export class GenerationStream implements Generation {
  readonly result: Promise<GenerationResult>
  private readonly pieces: string[] = []
  private wake: (() => void) | undefined
  private state: 'running' | 'finished' | 'failed' = 'running'
  private error: unknown
  private consumed = false
  private resolveResult!: (r: GenerationResult) => void
  private rejectResult!: (err: unknown) => void
  private readonly onLeave: () => void

  constructor(onLeave: () => void = () => {}) {
    this.onLeave = onLeave
    this.result = new Promise<GenerationResult>((resolve, reject) => {
      this.resolveResult = resolve
      this.rejectResult = reject
    })
    // a consumer may only iterate, and learn of a failure there: that must not count as unhandled
    this.result.catch(() => {})
  }

  get running(): boolean {
    return this.state === 'running'
  }

  push(piece: string): void {
    if (this.state !== 'running' || piece.length === 0) return
    this.pieces.push(piece)
    this.poke()
  }

  finish(result: GenerationResult): void {
    if (this.state !== 'running') return
    this.state = 'finished'
    this.resolveResult(result)
    this.poke()
  }

  /**
   * Ends the generation as cancelled: pieces the consumer has not taken yet are dropped (none is
   * delivered after a cancel), and the result's text, which must end with them, loses them too.
   */
  abort(result: GenerationResult): void {
    if (this.state !== 'running') return
    const dropped = this.pieces.splice(0).join('')
    this.finish({ ...result, text: result.text.slice(0, result.text.length - dropped.length) })
  }

  fail(err: unknown): void {
    if (this.state !== 'running') return
    this.state = 'failed'
    this.error = err
    this.rejectResult(err)
    this.poke()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    this.claim()
    try {
      while (true) {
        const piece = this.pieces.shift()
        if (piece !== undefined) yield piece
        else if (!(await this.more())) return
      }
    } finally {
      this.left()
    }
  }

  batches(): AsyncIterable<string[]> {
    this.claim()
    return { [Symbol.asyncIterator]: () => this.takeBatches() }
  }

  private async *takeBatches(): AsyncGenerator<string[]> {
    try {
      while (true) {
        if (this.pieces.length > 0) yield this.pieces.splice(0)
        else if (!(await this.more())) return
      }
    } finally {
      this.left()
    }
  }

  private claim(): void {
    if (this.consumed) throw new Error('a generation can be iterated only once')
    this.consumed = true
  }

  /** Waits for a piece or the end: false once finished, throws once failed. */
  private async more(): Promise<boolean> {
    if (this.state === 'finished') return false
    if (this.state === 'failed') throw this.error
    await new Promise<void>((resolve) => {
      this.wake = resolve
    })
    return true
  }

  /** The consumer left its loop: early, if the generation still runs. */
  private left(): void {
    if (this.state === 'running') this.onLeave()
  }

  private poke(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}
