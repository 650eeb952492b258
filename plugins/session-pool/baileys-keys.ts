import type { SignalKeyStore } from '@whiskeysockets/baileys'

/**
 * A write of Signal keys failed (fenced by a newer lease epoch, or PostgreSQL down after the store's
 * own retries). Baileys stores a send's keys when its transaction commits, after the message went out:
 * a send that fails with this was sent.
 */
export class KeysNotStored extends Error {
  constructor (cause: unknown) {
    super(`Signal keys were not stored: ${(cause as Error).message}`, { cause })
    this.name = 'KeysNotStored'
  }
}

/** The auth store's keys, with a failed write told apart from every other failure. */
export function markingFailedWrites (keys: SignalKeyStore): SignalKeyStore {
  return {
    get: (type, ids) => keys.get(type, ids),
    set: async (data) => {
      try {
        await keys.set(data)
      } catch (err) {
        throw new KeysNotStored(err)
      }
    },
    ...(keys.clear ? { clear: () => keys.clear!() } : {})
  }
}
