import { BoundedMap } from '../../core/bounded-map.ts'
import type { ProfilePicture } from '../../contracts/index.ts'

/** Pictures kept per replica, the least recently asked dropped first (an entry is a URL and two numbers). */
const CACHE_ENTRIES = 20_000
/** A URL is not handed out in its last minute: a client still has to fetch it. */
const EXPIRY_MARGIN_MS = 60_000
/** "No picture" and "hidden" change without WhatsApp telling: they are kept a fraction of the time a URL is. */
const NEGATIVE_FRACTION = 6

type Answer = Omit<ProfilePicture, 'cached'>

/**
 * Contacts' picture answers, per company (what a contact shows depends on who asks: privacy, blocks),
 * in this replica's memory: a hit costs nothing where NATS KV would cost a round trip, a handoff
 * only costs one query per picture again, and URLs that open contacts' pictures stay off the bus.
 * A URL is kept until its own expiry (`oe=`, hex Unix seconds) less a minute, or `maxAgeMs`.
 */
export class PictureCache {
  readonly #entries = new BoundedMap<string, { answer: Answer, until: number }>(CACHE_ENTRIES)
  readonly #maxAgeMs: number
  readonly #now: () => number

  constructor (maxAgeMs: number, now: () => number = Date.now) {
    this.#maxAgeMs = maxAgeMs
    this.#now = now
  }

  get (companyId: string, jid: string, quality: string): Answer | undefined {
    const key = keyOf(companyId, jid, quality)
    const entry = this.#entries.get(key)
    if (!entry) return undefined
    if (entry.until > this.#now()) return entry.answer
    this.#entries.delete(key)
    return undefined
  }

  set (companyId: string, jid: string, quality: string, answer: Answer): void {
    const now = this.#now()
    const expiresAt = answer.expiresAt ? Date.parse(answer.expiresAt) - EXPIRY_MARGIN_MS : Number.POSITIVE_INFINITY
    const until = answer.status === 'set'
      ? Math.min(now + this.#maxAgeMs, expiresAt)
      : now + this.#maxAgeMs / NEGATIVE_FRACTION
    if (until > now) this.#entries.set(keyOf(companyId, jid, quality), { answer, until })
  }

  /** A block changes what the contact shows the number (and the number the contact): ask WhatsApp again, by any of its JIDs. */
  forget (companyId: string, jids: (string | null)[]): void {
    for (const jid of jids) {
      if (jid !== null) for (const quality of ['image', 'preview']) this.#entries.delete(keyOf(companyId, jid, quality))
    }
  }
}

const keyOf = (companyId: string, jid: string, quality: string) => `${companyId}\u0000${jid}\u0000${quality}`

/** When a WhatsApp picture URL stops working: its `oe=` parameter, hex Unix seconds (null when it has none). */
export function urlExpiry (url: string): string | null {
  let oe: string | null
  try {
    oe = new URL(url).searchParams.get('oe')
  } catch {
    return null
  }
  if (!oe || !/^[0-9a-fA-F]{1,12}$/.test(oe)) return null
  const date = new Date(Number.parseInt(oe, 16) * 1000)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}
