import t from 'tap'
import { assignPreferredOwners, rankReplicas, RendezvousScores, takesUnowned } from '../plugins/ownership/assignment.ts'

const companies = (count: number) => Array.from({ length: count }, (_, index) => `company-${index}`)

function shares (assignment: Map<string, string>): Map<string, number> {
  const counts = new Map<string, number>()
  for (const replica of assignment.values()) counts.set(replica, (counts.get(replica) ?? 0) + 1)
  return counts
}

t.test('every replica computes the same assignment from the same inputs, in any order', async (t) => {
  const ids = companies(50)
  const one = assignPreferredOwners(ids, ['a', 'b', 'c'], 2)
  const other = assignPreferredOwners([...ids].reverse(), ['c', 'a', 'b'], 2)
  t.same([...one].sort(), [...other].sort())
})

t.test('the split stays within ±(replicas − 1) × slack of the even share', async (t) => {
  for (const [count, replicas] of [[200, 3], [200, 4], [1000, 5], [100, 2]] as const) {
    const names = Array.from({ length: replicas }, (_, index) => `replica-${index}`)
    const counts = shares(assignPreferredOwners(companies(count), names, 2))
    const even = count / replicas
    for (const name of names) {
      const deviation = Math.abs((counts.get(name) ?? 0) - even) / even * 100
      t.ok(deviation <= (replicas - 1) * 2 + 100 / even,
        `${count} on ${replicas}: ${name} has ${counts.get(name)} (${deviation.toFixed(1)} % off)`)
    }
  }
})

t.test('a cap computed in floating point would allow 71 of 200 on 3 replicas; the integer cap does not', async (t) => {
  const counts = shares(assignPreferredOwners(companies(200), ['a', 'b', 'c'], 5))
  t.ok(Math.max(...counts.values()) <= 70, `largest share ${Math.max(...counts.values())}`)
})

t.test('a joining replica moves about its share, nearly all of it to the newcomer', async (t) => {
  const ids = companies(300)
  const before = assignPreferredOwners(ids, ['a', 'b'], 2)
  const after = assignPreferredOwners(ids, ['a', 'b', 'c'], 2)
  const moved = ids.filter((id) => before.get(id) !== after.get(id))
  const toNewcomer = moved.filter((id) => after.get(id) === 'c').length
  // The load cap can push a few companies between the old replicas (a bounded-load cascade).
  t.ok(toNewcomer >= moved.length * 0.9, `${toNewcomer} of ${moved.length} moves go to the newcomer`)
  t.ok(moved.length <= 110, `${moved.length} of 300 moved`)
})

t.test('rendezvous ranking is stable and total', async (t) => {
  t.same(rankReplicas('x', ['a', 'b', 'c']), rankReplicas('x', ['c', 'b', 'a']))
  t.equal(rankReplicas('x', ['a', 'b', 'c']).length, 3)
  t.same(assignPreferredOwners(['x'], [], 2), new Map())
})

t.test('expiry markers are asked for only from servers that have them (2.11.2+)', async (t) => {
  const { supportsExpiryMarkers } = await import('../core/nats/kv.ts')
  for (const version of ['2.9.10', '2.10.22', '2.11.0', '2.11.1', undefined, '']) {
    t.notOk(supportsExpiryMarkers(version), `${version} has none`)
  }
  for (const version of ['2.11.2', '2.11.10', '2.12.0', '3.0.0', '2.11.3-beta']) t.ok(supportsExpiryMarkers(version), `${version} has them`)
})

t.test('remembered scores give the same assignment as fresh ones, through member changes', async (t) => {
  const ids = companies(2_000)
  const remembered = new RendezvousScores()
  for (const replicas of [['a'], ['a', 'b'], ['a', 'b', 'c'], ['a', 'c'], ['a', 'c', 'd', 'e']]) {
    t.same([...assignPreferredOwners(ids, replicas, 2, remembered)], [...assignPreferredOwners(ids, replicas, 2)], replicas.join(','))
  }
})

t.test('the grace rule: who takes a company nobody holds, and when', async (t) => {
  const base = { self: 'a', preferredAlive: true, unownedSince: 1_000, assignmentChangedAt: 0, graceMs: 750 }
  t.ok(takesUnowned({ ...base, preferred: 'a', at: 1_000 }), 'its preferred owner takes it at once')
  t.ok(takesUnowned({ ...base, preferred: undefined, preferredAlive: false, at: 1_000 }), 'so does anyone when it has no preferred owner')
  t.ok(takesUnowned({ ...base, preferred: 'b', preferredAlive: false, at: 1_000 }), 'or when its preferred owner is not alive')
  t.notOk(takesUnowned({ ...base, preferred: 'b', at: 1_749 }), 'another replica waits out the grace')
  t.ok(takesUnowned({ ...base, preferred: 'b', at: 1_750 }), 'and takes it once the grace has run')
  t.notOk(takesUnowned({ ...base, preferred: 'b', assignmentChangedAt: 1_500, at: 1_750 }),
    'a newly preferred owner gets the grace from when it became preferred')
  t.ok(takesUnowned({ ...base, preferred: 'b', assignmentChangedAt: 1_500, at: 2_250 }), 'then the others may take it')
})
