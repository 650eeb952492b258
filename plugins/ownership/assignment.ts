import { createHash } from 'node:crypto'

/** Rendezvous score of a (company, replica) pair: every replica computes the same number. */
export function rendezvousScore (companyId: string, replica: string): bigint {
  return createHash('sha256').update(`${companyId}\u0000${replica}`).digest().readBigUInt64BE(0)
}

/** Pairs remembered by a score cache before it starts over (10,000 companies on 20 replicas, twice). */
const SCORES_REMEMBERED = 400_000

/**
 * Scores remembered across assignments: they never change, and an assignment over 10,000 companies
 * needs 60,000 of them each time a member joins, leaves or flickers.
 */
export class RendezvousScores {
  readonly #scores = new Map<string, bigint>()

  score (companyId: string, replica: string): bigint {
    const key = `${companyId}\u0000${replica}`
    let found = this.#scores.get(key)
    if (found === undefined) {
      if (this.#scores.size >= SCORES_REMEMBERED) this.#scores.clear()
      found = rendezvousScore(companyId, replica)
      this.#scores.set(key, found)
    }
    return found
  }
}

/** Replicas ranked by rendezvous score for one company, best first. */
export function rankReplicas (companyId: string, replicas: readonly string[], scores = new RendezvousScores()): string[] {
  return replicas
    .map((replica) => ({ replica, score: scores.score(companyId, replica) }))
    .sort((a, b) => (a.score === b.score ? a.replica.localeCompare(b.replica) : a.score > b.score ? -1 : 1))
    .map(({ replica }) => replica)
}

/**
 * Preferred owner of every company: rendezvous (HRW) hashing with a load cap. Plain HRW leaves a
 * replica with one standard deviation more or less than its share (±10 % at 200 companies on 3
 * replicas); capping each at its share plus `slackPct` keeps the split even while most companies
 * still go to their first choice. The cap bounds the largest share directly and the smallest by what
 * is left, so the worst deviation is about (replicas − 1) × slack. Deterministic for the same inputs, so every replica agrees.
 */
export function assignPreferredOwners (
  companyIds: readonly string[],
  replicas: readonly string[],
  slackPct: number,
  scores = new RendezvousScores()
): Map<string, string> {
  const assignment = new Map<string, string>()
  if (replicas.length === 0) return assignment
  // Integer arithmetic: 200/3 × 1.05 in floating point is 70.000…01, which would round the cap up to 71.
  const capacity = Math.max(1, Math.ceil((companyIds.length * (100 + slackPct)) / (100 * replicas.length)))
  const load = new Map(replicas.map((replica) => [replica, 0]))
  // A fixed, hash-based order, so no company is always last to choose. Each hash is computed once:
  // hashing inside the comparator cost 2 n log n SHA-256s (260,000 for 10,000 companies).
  const ordered = companyIds
    .map((companyId) => ({ companyId, order: scores.score(companyId, '') }))
    .sort((a, b) => (a.order === b.order ? a.companyId.localeCompare(b.companyId) : a.order < b.order ? -1 : 1))
    .map(({ companyId }) => companyId)
  for (const companyId of ordered) {
    const choice = rankReplicas(companyId, replicas, scores).find((replica) => (load.get(replica) ?? 0) < capacity) ?? replicas[0]
    assignment.set(companyId, choice)
    load.set(choice, (load.get(choice) ?? 0) + 1)
  }
  return assignment
}

/** What a replica knows when it decides whether to take a company nobody holds. */
export interface UnownedCompany {
  /** This replica. */
  self: string
  /** The company's preferred owner, if it has one. */
  preferred: string | undefined
  preferredAlive: boolean
  /** Since when the company has had no holder, as this replica can tell (monotonic ms). */
  unownedSince: number
  /** When the members the assignment was made for last changed. */
  assignmentChangedAt: number
  at: number
  graceMs: number
}

/**
 * The grace rule: a company nobody holds is taken at once by its preferred owner, or by anyone when
 * that owner is not alive; the others wait out the grace. The grace runs from when the company became
 * unowned, or from when its current preferred owner became preferred if that is later: a replica that
 * joins gets its share rather than losing it to those that were already up (a cold start moved 8,316
 * of 10,000 companies twice: bench:scale).
 */
export function takesUnowned (company: UnownedCompany): boolean {
  if (company.preferred === company.self || !company.preferredAlive) return true
  return company.at - Math.max(company.unownedSince, company.assignmentChangedAt) >= company.graceMs
}
