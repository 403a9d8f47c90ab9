import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { type HostCandidate, ROUTING_DEFAULTS, Router, RouterConfigError, type RouterInit } from '../../src/routing/index.ts'

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const runs = Number(process.env.FC_RUNS ?? 200)
console.log(`routing properties: FC_SEED=${seed} FC_RUNS=${runs}`)

/** mulberry32: a seeded uniform source in [0, 1). */
function seeded(s: number): () => number {
  let state = s >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A router on a test clock that moves only when the test says. */
function makeRouter(init: Partial<RouterInit> = {}, randomSeed = seed): { router: Router; clock: { t: number } } {
  const clock = { t: 1_000_000 }
  const router = new Router({ now: () => clock.t, random: seeded(randomSeed), ...init })
  return { router, clock }
}

const host = (peerId: string, load = 0, queueDepth = 0): HostCandidate => ({ peerId, load, queueDepth })

/** How often each host comes first over `n` sequential requests (each finished before the next). */
function firstPicks(router: Router, candidates: HostCandidate[], n: number): Map<string, number> {
  const counts = new Map<string, number>(candidates.map((c) => [c.peerId, 0]))
  for (let i = 0; i < n; i++) {
    const first = router.rank(candidates)[0]
    assert.ok(first != null)
    counts.set(first, (counts.get(first) ?? 0) + 1)
    router.started(first)
    router.finished(first)
  }
  return counts
}

test('equal hosts share sequential requests roughly evenly', () => {
  const { router } = makeRouter()
  const hosts = ['a', 'b', 'c', 'd'].map((p) => host(p, 0.2, 1))
  for (const h of hosts) router.observeLatency(h.peerId, 100)
  const n = 8_000
  const counts = firstPicks(router, hosts, n)
  for (const [peerId, count] of counts) {
    assert.ok(Math.abs(count / n - 0.25) < 0.03, `${peerId} got ${count} of ${n} (seed ${seed})`)
  }
})

test('requests in flight spread a burst over equal hosts before adverts catch up', () => {
  const { router } = makeRouter()
  const hosts = ['a', 'b', 'c'].map((p) => host(p))
  const counts = new Map<string, number>()
  for (let i = 0; i < 60; i++) {
    const first = router.rank(hosts)[0] as string
    router.started(first)
    counts.set(first, (counts.get(first) ?? 0) + 1)
  }
  const shares = [...counts.values()]
  assert.equal(shares.length, 3)
  assert.ok(Math.max(...shares) - Math.min(...shares) <= 4, `shares ${shares} (seed ${seed})`)
  assert.deepEqual(
    router
      .snapshot()
      .map((s) => s.inFlight)
      .reduce((a, b) => a + b),
    60
  )
})

test('a faster host (lower EWMA) is preferred', () => {
  const { router } = makeRouter()
  const hosts = [host('slow'), host('fast')]
  router.observeLatency('slow', 400)
  router.observeLatency('fast', 100)
  assert.deepEqual(router.rank(hosts), ['fast', 'slow'])
  assert.equal(firstPicks(router, hosts, 1_000).get('fast'), 1_000)

  // a small difference still tilts the share without starving the other
  const near = makeRouter().router
  near.observeLatency('x', 100)
  near.observeLatency('y', 110)
  const counts = firstPicks(near, [host('x'), host('y')], 4_000)
  const x = counts.get('x') ?? 0
  assert.ok(x > 2_200 && x < 3_800, `x first ${x} of 4000 (seed ${seed})`)
})

test('the EWMA follows a host that slows down', () => {
  const { router } = makeRouter({ ewmaAlpha: 0.5 })
  router.observeLatency('a', 100)
  router.observeLatency('b', 150)
  assert.equal(router.rank([host('a'), host('b')])[0], 'a')
  for (let i = 0; i < 4; i++) router.observeLatency('a', 1_000)
  const a = router.snapshot().find((s) => s.peerId === 'a')
  assert.ok(a != null && a.latencyMs != null && a.latencyMs > 900, `ewma ${a?.latencyMs}`)
  assert.equal(router.rank([host('a'), host('b')])[0], 'b')
})

test('a loaded host is preferred less', () => {
  const { router } = makeRouter()
  for (const p of ['busy', 'idle']) router.observeLatency(p, 100)
  const hosts = [host('busy', 0.9, 3), host('idle', 0.1, 0)]
  assert.equal(firstPicks(router, hosts, 1_000).get('idle'), 1_000)
  assert.ok(router.cost(hosts[0] as HostCandidate) > router.cost(hosts[1] as HostCandidate))

  const slightly = firstPicks(router, [host('busy', 0.3, 0), host('idle', 0.1, 0)], 4_000)
  const idle = slightly.get('idle') ?? 0
  assert.ok(idle > 2_200 && idle < 4_000, `idle first ${idle} of 4000 (seed ${seed})`)
})

test('a host never measured is tried before measured slower ones', () => {
  const { router } = makeRouter()
  router.observeLatency('known', ROUTING_DEFAULTS.initialLatencyMs * 4)
  assert.deepEqual(router.rank([host('known'), host('new')]), ['new', 'known'])
})

test('a host that fails K times in a row is ranked after all healthy hosts for avoidMs, then comes back', () => {
  const avoidMs = 5_000
  const { router, clock } = makeRouter({ failuresToAvoid: 3, avoidMs })
  router.observeLatency('flaky', 10)
  for (const p of ['h1', 'h2', 'h3']) router.observeLatency(p, 2_000)
  // the healthy hosts are slow and loaded: only avoidance can put the fast host after them
  const hosts = [host('flaky'), host('h1', 2, 5), host('h2', 1, 9), host('h3', 5, 1)]
  assert.equal(router.rank(hosts)[0], 'flaky')

  router.failed('flaky', 'connection refused')
  router.failed('flaky', 'connection refused')
  assert.notEqual(router.rank(hosts).at(-1), 'flaky', 'two failures do not avoid it yet')
  router.failed('flaky', 'timeout')
  const until = clock.t + avoidMs
  const stats = router.snapshot().find((s) => s.peerId === 'flaky')
  assert.equal(stats?.avoidedUntil, until)
  assert.equal(stats?.consecutiveFailures, 3)
  assert.equal(stats?.lastFailure, 'timeout')

  for (const at of [clock.t, clock.t + 1, until - 1]) {
    clock.t = at
    for (let i = 0; i < 50; i++) assert.equal(router.rank(hosts).at(-1), 'flaky', `avoided at +${at - (until - avoidMs)} ms`)
  }
  clock.t = until
  assert.equal(router.snapshot().find((s) => s.peerId === 'flaky')?.avoidedUntil, null)
  assert.equal(router.rank(hosts)[0], 'flaky', 'back after the pause')
})

test('avoided hosts come after healthy ones, soonest back first; nothing is dropped', () => {
  const { router, clock } = makeRouter({ failuresToAvoid: 1, avoidMs: 1_000 })
  router.failed('x', 'refused')
  clock.t += 500
  router.failed('y', 'refused')
  assert.deepEqual(router.rank([host('y'), host('x'), host('ok', 50, 50)]), ['ok', 'x', 'y'])
  assert.deepEqual(router.rank([host('y'), host('x')]), ['x', 'y'])
})

test('the pause doubles when the host fails again after it, up to maxAvoidMs, and one success resets it', () => {
  const { router, clock } = makeRouter({ failuresToAvoid: 2, avoidMs: 1_000, maxAvoidMs: 5_000 })
  const backoff = () => router.snapshot().find((s) => s.peerId === 'h')?.backoffMs
  const avoidedFor = () => (router.snapshot().find((s) => s.peerId === 'h')?.avoidedUntil ?? clock.t) - clock.t
  router.failed('h', 'refused')
  assert.equal(avoidedFor(), 0)
  router.failed('h', 'refused')
  assert.equal(avoidedFor(), 1_000)
  // a late failure of a request sent before the pause does not extend it
  clock.t += 400
  router.failed('h', 'refused')
  assert.equal(avoidedFor(), 600)

  for (const expected of [2_000, 4_000, 5_000, 5_000]) {
    clock.t += avoidedFor()
    assert.equal(avoidedFor(), 0)
    router.failed('h', 'timeout')
    assert.equal(backoff(), expected)
    assert.equal(avoidedFor(), expected)
  }

  router.succeeded('h')
  assert.equal(avoidedFor(), 0, 'a success ends the pause')
  assert.equal(backoff(), 0)
  router.failed('h', 'refused')
  assert.equal(avoidedFor(), 0, 'the count starts over')
  router.failed('h', 'refused')
  assert.equal(avoidedFor(), 1_000, 'the pause starts over at avoidMs')
})

test('a slow host is retried once its estimate relaxes toward the initial one', () => {
  const { router, clock } = makeRouter({ latencyHalfLifeMs: 10_000, initialLatencyMs: 250 })
  router.observeLatency('slow', 4_000)
  router.observeLatency('steady', 300)
  const hosts = [host('slow'), host('steady')]
  assert.equal(router.rank(hosts)[0], 'steady')
  clock.t += 60_000
  router.observeLatency('steady', 300) // steady keeps answering, slow has had no traffic
  const slow = router.snapshot().find((s) => s.peerId === 'slow')
  assert.ok(slow != null && slow.estimateMs < 320 && slow.latencyMs === 4_000, `estimate ${slow?.estimateMs}`)
  assert.ok((firstPicks(router, hosts, 400).get('slow') ?? 0) > 0)
})

test('tracked hosts stay bounded, and prune forgets idle hosts not seen for a while', () => {
  const { router, clock } = makeRouter({ maxTrackedHosts: 3, forgetAfterMs: 1_000, failuresToAvoid: 1, avoidMs: 10_000 })
  for (const p of ['a', 'b', 'c', 'd']) {
    router.observeLatency(p, 10)
    clock.t += 1
  }
  assert.equal(router.size, 3)
  assert.deepEqual(
    router.snapshot().map((s) => s.peerId),
    ['b', 'c', 'd'],
    'the least recently seen goes first'
  )
  router.rank([host('b')]) // seeing b again makes c the oldest
  router.started('c') // ...but c has a request in flight, so d goes instead
  router.observeLatency('e', 10)
  assert.deepEqual(
    router
      .snapshot()
      .map((s) => s.peerId)
      .sort(),
    ['b', 'c', 'e']
  )

  router.failed('e', 'refused') // avoided for 10 s
  clock.t += 5_000
  assert.deepEqual(router.prune(), ['b'], 'c is in flight and e is avoided')
  router.finished('c')
  clock.t += 6_000
  assert.deepEqual(router.prune().sort(), ['c', 'e'])
  assert.equal(router.size, 0)
})

test('finished never takes in-flight below zero; bad latency samples are ignored', () => {
  const { router } = makeRouter()
  router.finished('a')
  router.finished('a')
  router.started('a')
  assert.equal(router.snapshot()[0]?.inFlight, 1)
  for (const bad of [Number.NaN, -5, Number.NEGATIVE_INFINITY]) router.observeLatency('a', bad)
  assert.equal(router.snapshot()[0]?.latencyMs, null)
  router.observeLatency('a', Number.POSITIVE_INFINITY)
  assert.equal(router.snapshot()[0]?.latencyMs, ROUTING_DEFAULTS.maxLatencyMs)
  router.failed('a', 'x'.repeat(10_000))
  assert.equal(router.snapshot()[0]?.lastFailure?.length, ROUTING_DEFAULTS.maxReasonLength)
  router.started('p'.repeat(1_000))
  assert.equal(router.size, 1, 'an oversized peer id is not tracked')
})

test('settings out of range are refused with a typed error', () => {
  const base = { now: () => 0, random: () => 0.5 }
  for (const bad of [
    { ewmaAlpha: 0 },
    { ewmaAlpha: 1.5 },
    { avoidMs: -1 },
    { maxAvoidMs: 10, avoidMs: 100 },
    { maxTrackedHosts: 0 },
    { failuresToAvoid: 1.5 },
    { tieSpread: Number.NaN },
    { initialLatencyMs: Number.POSITIVE_INFINITY }
  ]) {
    assert.throws(
      () => new Router({ ...base, ...bad }),
      (err: unknown) => err instanceof RouterConfigError && err.code === 'INVALID_ROUTER_CONFIG',
      JSON.stringify(bad)
    )
  }
  assert.doesNotThrow(() => new Router(base))
})

// ---- properties ----

const weird = fc.oneof(
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, 0, 1e308, -0),
  fc.double({ min: 0, max: 2, noNaN: true })
)
const peerIdArb = fc.oneof(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'), fc.string({ maxLength: 12 }))
const candidateArb = fc.record(
  { peerId: peerIdArb, load: weird, queueDepth: weird, priceMultiplier: weird },
  { requiredKeys: ['peerId', 'load', 'queueDepth'] }
)
const opArb = fc.oneof(
  fc.record({ op: fc.constant('rank' as const), candidates: fc.array(candidateArb, { maxLength: 30 }) }),
  fc.record({ op: fc.constantFrom('started' as const, 'finished' as const, 'succeeded' as const), peerId: peerIdArb }),
  fc.record({ op: fc.constant('failed' as const), peerId: peerIdArb, reason: fc.string({ maxLength: 20 }) }),
  fc.record({ op: fc.constant('latency' as const), peerId: peerIdArb, ms: weird }),
  fc.record({ op: fc.constant('tick' as const), ms: fc.oneof(fc.nat(100_000), weird) }),
  fc.record({ op: fc.constant('prune' as const), ms: fc.option(weird, { nil: undefined }) })
)

test('property: rank is a permutation of the distinct input ids, never throws, and memory stays bounded', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 80 }), fc.array(weird, { minLength: 1, maxLength: 16 }), (ops, randoms) => {
      let t = 0
      let r = 0
      const maxTrackedHosts = 6
      const router = new Router({
        now: () => t,
        // a hostile random source too: NaN, infinities and values outside [0, 1)
        random: () => randoms[r++ % randoms.length] as number,
        maxTrackedHosts,
        failuresToAvoid: 2,
        avoidMs: 1_000
      })
      for (const o of ops) {
        switch (o.op) {
          case 'rank': {
            const ranked = router.rank(o.candidates)
            const distinct = [...new Set(o.candidates.map((c) => c.peerId))]
            assert.equal(ranked.length, distinct.length)
            assert.equal(new Set(ranked).size, ranked.length, 'no duplicates')
            assert.deepEqual([...ranked].sort(), [...distinct].sort(), 'none lost, none added')
            for (const c of o.candidates) {
              const cost = router.cost(c)
              assert.ok(Number.isFinite(cost) && cost > 0, `cost ${cost} for ${JSON.stringify(c)}`)
            }
            break
          }
          case 'started':
            router.started(o.peerId)
            break
          case 'finished':
            router.finished(o.peerId)
            break
          case 'succeeded':
            router.succeeded(o.peerId)
            break
          case 'failed':
            router.failed(o.peerId, o.reason)
            break
          case 'latency':
            router.observeLatency(o.peerId, o.ms)
            break
          case 'tick':
            t = Number.isFinite(o.ms) ? t + o.ms : o.ms
            break
          case 'prune':
            router.prune(o.ms)
            break
        }
        assert.ok(router.size <= maxTrackedHosts, `tracking ${router.size} hosts`)
        for (const s of router.snapshot()) {
          assert.ok(Number.isFinite(s.estimateMs) && s.estimateMs > 0)
          assert.ok(s.latencyMs === null || Number.isFinite(s.latencyMs))
          assert.ok(Number.isSafeInteger(s.inFlight) && s.inFlight >= 0)
        }
      }
    }),
    { seed, numRuns: runs }
  )
})

// ---- a deterministic simulation: closed-loop clients, hosts of different speeds, one that dies ----

interface SimHost {
  peerId: string
  serviceMs: number
  slots: number
  running: number
  queue: Array<() => void>
  deadAfter: number
}

/** Runs `requests` requests from `clients` closed-loop clients; returns mean latency and per-host counts. */
function simulate(pick: (candidates: HostCandidate[], router: Router) => string, simSeed: number) {
  const events: Array<{ at: number; seq: number; run: () => void }> = []
  let t = 0
  let seq = 0
  const at = (delay: number, run: () => void) => {
    events.push({ at: t + delay, seq: seq++, run })
    events.sort((a, b) => a.at - b.at || a.seq - b.seq)
  }
  const router = new Router({ now: () => t, random: seeded(simSeed) })
  const hosts: SimHost[] = [
    { peerId: 'fast', serviceMs: 20, slots: 2, running: 0, queue: [], deadAfter: Number.POSITIVE_INFINITY },
    { peerId: 'mid', serviceMs: 40, slots: 2, running: 0, queue: [], deadAfter: Number.POSITIVE_INFINITY },
    { peerId: 'slow', serviceMs: 120, slots: 2, running: 0, queue: [], deadAfter: Number.POSITIVE_INFINITY },
    { peerId: 'doomed', serviceMs: 20, slots: 2, running: 0, queue: [], deadAfter: 2_000 }
  ]
  // adverts are gossiped every 500 ms, so the router sees them late
  let adverts: HostCandidate[] = []
  const advertise = () => {
    adverts = hosts.map((h) => ({ peerId: h.peerId, load: h.running / h.slots, queueDepth: h.queue.length }))
    at(500, advertise)
  }
  advertise()
  const served = new Map<string, number>()
  let failures = 0
  let done = 0
  let totalLatency = 0
  const requests = 3_000
  const send = () => {
    if (done + failures >= requests) return
    const peerId = pick(adverts, router)
    const h = hosts.find((x) => x.peerId === peerId) as SimHost
    const sentAt = t
    router.started(peerId)
    if (t >= h.deadAfter) {
      at(1, () => {
        router.failed(peerId, 'connection refused')
        router.finished(peerId)
        failures++
        send()
      })
      return
    }
    const begin = () => {
      h.running++
      at(h.serviceMs, () => {
        h.running--
        h.queue.shift()?.()
        router.observeLatency(peerId, t - sentAt)
        router.succeeded(peerId)
        router.finished(peerId)
        served.set(peerId, (served.get(peerId) ?? 0) + 1)
        totalLatency += t - sentAt
        done++
        send()
      })
    }
    if (h.running < h.slots) begin()
    else h.queue.push(begin)
  }
  for (let c = 0; c < 8; c++) at(c, send)
  while (events.length > 0 && done + failures < requests) {
    const e = events.shift() as (typeof events)[number]
    t = e.at
    e.run()
  }
  return { meanMs: totalLatency / done, served, failures, seconds: t / 1000 }
}

test('simulation: the router beats a random choice, favours fast hosts and stops sending to a dead one', () => {
  const routed = simulate((candidates, router) => router.rank(candidates)[0] as string, seed)
  const rand = seeded(seed + 1)
  const random = simulate((candidates) => (candidates[Math.floor(rand() * candidates.length)] as HostCandidate).peerId, seed)
  const detail = `routed ${JSON.stringify({ ...routed, served: [...routed.served] })} random ${random.meanMs.toFixed(1)} ms, ${random.failures} failures (seed ${seed})`
  assert.ok(routed.meanMs < random.meanMs * 0.8, detail)
  assert.ok((routed.served.get('fast') ?? 0) > (routed.served.get('mid') ?? 0), detail)
  assert.ok((routed.served.get('mid') ?? 0) > (routed.served.get('slow') ?? 0), detail)
  // three failures to start the first pause, then one per doubled pause: a handful in the whole run
  assert.ok(routed.failures <= 3 + Math.ceil(Math.log2(1 + (routed.seconds * 1000) / ROUTING_DEFAULTS.avoidMs)) + 8, detail)
  assert.ok(random.failures > 10 * routed.failures, detail)
})

test('a host with more stake is preferred among equals; a missing or bad stake counts as the minimum', () => {
  const router = new Router({ now: () => 0, random: () => 0.5 })
  const base = { load: 0, queueDepth: 0 }
  assert.ok(router.cost({ peerId: 'rich', ...base, stakeRatio: 16 }) < router.cost({ peerId: 'poor', ...base, stakeRatio: 1 }))
  assert.equal(router.cost({ peerId: 'rich', ...base, stakeRatio: 16 }), router.cost({ peerId: 'richer', ...base, stakeRatio: 1_000 }))
  assert.equal(router.cost({ peerId: 'x', ...base, stakeRatio: Number.NaN }), router.cost({ peerId: 'x', ...base }))
  assert.equal(router.cost({ peerId: 'x', ...base, stakeRatio: -5 }), router.cost({ peerId: 'x', ...base }))
  // 16x the minimum stake halves the cost with the default weight
  assert.equal(router.cost({ peerId: 'y', ...base, stakeRatio: 16 }) * 2, router.cost({ peerId: 'y', ...base }))
  assert.deepEqual(
    router.rank([
      { peerId: 'poor', ...base, stakeRatio: 1 },
      { peerId: 'rich', ...base, stakeRatio: 16 }
    ]),
    ['rich', 'poor']
  )
})
