import type { PossiblyExtendedCacheStore } from '@whiskeysockets/baileys'

/**
 * Baileys' per-socket caches, shared by every socket of a process. Left to itself, every socket makes
 * five NodeCaches (retry counts, call offers, users' devices, placeholder resends, identity checks),
 * each with its own sweep timer and about 6 KB of empty shards: a heap snapshot at 100 sessions showed
 * 1,005 of them, 2.8 MB. Four can be given in the socket's config; those four are one store each here,
 * and every socket sees its own part of it through a view whose keys carry the socket's own prefix,
 * so no socket ever reads another's entries (as before, when each had a cache of its own).
 */

/** Baileys' own lifetimes for these caches (`DEFAULT_CACHE_TTLS`, in seconds there). */
const TTL_MS = {
  msgRetryCounter: 60 * 60_000,
  callOffer: 5 * 60_000,
  userDevices: 5 * 60_000,
  placeholderResend: 60 * 60_000
} as const

/** At most this many entries in one store, of all sockets together (the oldest go first): a bound, not a size that is reached. */
const MAX_ENTRIES = 200_000

/**
 * Entries that expire a fixed time after they were last set, without a timer. Each set moves its
 * entry to the end of the Map, so the Map is in expiry order and the expired ones are taken from its
 * front as new ones come.
 */
export class ExpiringStore {
  readonly #entries = new Map<string, { value: unknown, expires: number }>()
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #now: () => number

  constructor (ttlMs: number, maxEntries = MAX_ENTRIES, now: () => number = () => performance.now()) {
    this.#ttlMs = ttlMs
    this.#maxEntries = maxEntries
    this.#now = now
  }

  get size (): number { return this.#entries.size }

  get (key: string): unknown {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expires <= this.#now()) {
      this.#entries.delete(key)
      return undefined
    }
    return entry.value
  }

  set (key: string, value: unknown): void {
    const now = this.#now()
    this.#entries.delete(key)
    this.#entries.set(key, { value, expires: now + this.#ttlMs })
    for (const [oldest, entry] of this.#entries) {
      if (entry.expires > now && this.#entries.size <= this.#maxEntries) break
      this.#entries.delete(oldest)
    }
  }

  delete (key: string): void { this.#entries.delete(key) }
}

let sockets = 0

/** A socket's part of a shared store, as Baileys' CacheStore (and the device cache's mget/mset). */
function viewOf (store: ExpiringStore, prefix: string) {
  return {
    get: <T>(key: string) => store.get(prefix + key) as T | undefined,
    set: <T>(key: string, value: T) => { store.set(prefix + key, value) },
    del: (key: string) => { store.delete(prefix + key) },
    // Baileys never flushes these caches; a view has no list of its own keys to flush, and its entries expire.
    flushAll: () => {},
    mget: async <T>(keys: string[]) => Object.fromEntries(keys.map((key) => [key, store.get(prefix + key) as T | undefined])),
    mset: <T>(entries: { key: string, value: T }[]) => { for (const { key, value } of entries) store.set(prefix + key, value) },
    mdel: (keys: string[]) => { for (const key of keys) store.delete(prefix + key) }
  } satisfies PossiblyExtendedCacheStore
}

export type SharedCaches = ReturnType<typeof sharedBaileysCaches>

/** The stores of a process (one per socket factory); `forSocket` gives a new socket its config entries. */
export function sharedBaileysCaches () {
  const stores = {
    msgRetryCounter: new ExpiringStore(TTL_MS.msgRetryCounter),
    callOffer: new ExpiringStore(TTL_MS.callOffer),
    userDevices: new ExpiringStore(TTL_MS.userDevices),
    placeholderResend: new ExpiringStore(TTL_MS.placeholderResend)
  }
  return {
    stores,
    /** Views of a socket of its own: a new socket (a reconnect too) starts empty, as with Baileys' own caches. */
    forSocket: () => {
      const prefix = `${(sockets++).toString(36)}\u0000`
      return {
        msgRetryCounterCache: viewOf(stores.msgRetryCounter, prefix),
        callOfferCache: viewOf(stores.callOffer, prefix),
        userDevicesCache: viewOf(stores.userDevices, prefix),
        placeholderResendCache: viewOf(stores.placeholderResend, prefix)
      }
    }
  }
}

/** What is read of an lru-cache (Baileys' dependency) to make the same cache again. */
interface LruLike {
  constructor: new (options: Record<string, unknown>) => LruLike
  readonly max: number
  readonly maxSize: number
  readonly ttl: number
  readonly ttlAutopurge: boolean
  readonly updateAgeOnGet: boolean
  readonly size: number
  readonly dispose?: (...args: unknown[]) => void
}

/**
 * Baileys' MessageRetryManager (one per socket) keeps two lru-caches with a `max` (512 recent messages,
 * 1,024 base keys), and lru-cache allocates every slot of a `max` up front: 77 KB per socket, most of
 * it before the first message (heap snapshots at 100 and 400 sessions). Each is made again, empty, with
 * the same bound as a `maxSize` of one per entry, which lru-cache grows as entries come: the same
 * entries, lifetimes and evictions (and the recent messages' `dispose`, which keeps the manager's index).
 * Returns how many were replaced; none when a Baileys release has changed the manager.
 */
export function growRetryCachesLazily (sock: unknown): number {
  const manager = (sock as { messageRetryManager?: Record<string, unknown> | null }).messageRetryManager
  if (!manager) return 0
  let replaced = 0
  for (const field of ['recentMessagesMap', 'baseKeys']) {
    const cache = manager[field] as LruLike | undefined
    if (!cache || typeof cache.constructor !== 'function' || !(cache.max > 0) || cache.maxSize !== 0 || cache.size !== 0) continue
    manager[field] = new cache.constructor({
      maxSize: cache.max,
      sizeCalculation: () => 1,
      ...(cache.ttl ? { ttl: cache.ttl, ttlAutopurge: cache.ttlAutopurge, updateAgeOnGet: cache.updateAgeOnGet } : {}),
      ...(cache.dispose ? { dispose: cache.dispose } : {})
    })
    replaced++
  }
  return replaced
}
