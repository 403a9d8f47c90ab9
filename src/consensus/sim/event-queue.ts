/** Events ordered by simulated time, then by insertion: a deterministic schedule. */
export class EventQueue {
  private readonly heap: Array<{ at: number; seq: number; run: () => void }> = []
  private seq = 0

  get size(): number {
    return this.heap.length
  }

  push(at: number, run: () => void): void {
    const item = { at, seq: this.seq++, run }
    const h = this.heap
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i] as typeof item, h[p] as typeof item)) break
      ;[h[i], h[p]] = [h[p] as typeof item, h[i] as typeof item]
      i = p
    }
  }

  pop(): { at: number; run: () => void } | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (top == null || last == null) return undefined
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l] as typeof last, h[m] as typeof last)) m = l
        if (r < h.length && before(h[r] as typeof last, h[m] as typeof last)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m] as typeof last, h[i] as typeof last]
        i = m
      }
    }
    return top
  }
}

function before(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}
