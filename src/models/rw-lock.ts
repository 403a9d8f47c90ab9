/**
 * A first-come, first-served readers-writer lock for async work: any number of readers at once,
 * or one writer alone. A waiting writer holds back readers that arrive after it, so a stream of
 * exports cannot starve a removal.
 */
export class RwLock {
  private readers = 0
  private writing = false
  private readonly queue: Array<{ write: boolean; grant: () => void }> = []

  /** Runs `fn` while holding the lock shared with other readers. */
  async read<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false)
    try {
      return await fn()
    } finally {
      this.readers--
      this.drain()
    }
  }

  /** Runs `fn` while holding the lock alone. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true)
    try {
      return await fn()
    } finally {
      this.writing = false
      this.drain()
    }
  }

  /** True when nobody holds or waits for the lock. */
  get idle(): boolean {
    return this.readers === 0 && !this.writing && this.queue.length === 0
  }

  private acquire(write: boolean): Promise<void> {
    if (this.queue.length === 0 && this.grantable(write)) {
      this.take(write)
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      this.queue.push({ write, grant: resolve })
    })
  }

  private grantable(write: boolean): boolean {
    return write ? !this.writing && this.readers === 0 : !this.writing
  }

  private take(write: boolean): void {
    if (write) this.writing = true
    else this.readers++
  }

  private drain(): void {
    for (let next = this.queue[0]; next != null && this.grantable(next.write); next = this.queue[0]) {
      this.queue.shift()
      this.take(next.write)
      next.grant()
    }
  }
}
