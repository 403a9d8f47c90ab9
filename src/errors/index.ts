/**
 * Errors: the base class every LLMESH error extends. Each condition gets its own subclass
 * (beside the concern it belongs to) with a stable `code`, the data that explains it, and a
 * message that says what happened and what to do next.
 */
export interface LlmeshErrorOptions {
  /** What the user can do about it; appended to the message. */
  hint?: string
  cause?: unknown
}

export class LlmeshError<Code extends string = string> extends Error {
  readonly code: Code
  /** The message without the hint, for logs and API bodies. */
  readonly shortMessage: string
  readonly hint: string | undefined

  constructor(code: Code, shortMessage: string, options: LlmeshErrorOptions = {}) {
    super(options.hint == null ? shortMessage : `${shortMessage}; ${options.hint}`, { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.shortMessage = shortMessage
    this.hint = options.hint
  }
}

/** True when `err` is a Node.js system error with the given code (EADDRINUSE, ENOENT, ...). */
export function isSystemError(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code
}
