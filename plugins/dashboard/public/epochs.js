// Which report about a company's holder or connection is current: decided by lease epoch, never by
// arrival. The browser's copy of contracts/epochs.ts (the page loads no TypeScript); the two are
// held to the same answers by test/epoch-order.test.ts, so change them together.

/** Events that say who holds a company or what state its connection is in. */
export const LEASE_STATE_EVENTS = new Set([
  'owner_changed', 'connected', 'disconnected', 'qr', 'pairing_code', 'logout', 'connection_replaced',
  'reconnect_failed', 'health_check_failed', 'error'
])

/**
 * The newest lease epoch seen per company. Epoch 0 (or null, or none) means no lease applies: it is
 * never stale and does not move the mark.
 */
export class NewestEpochs {
  #newest = new Map()

  /** The newest epoch seen for the company (0 for none). */
  newest (companyId) {
    return this.#newest.get(companyId) ?? 0
  }

  /** Notes an epoch seen for the company; false when a newer one was seen before (what carried it is stale). */
  observe (companyId, epoch) {
    if (!epoch) return true
    if (epoch < this.newest(companyId)) return false
    this.#newest.set(companyId, epoch)
    return true
  }

  /** Whether an event is to be applied: false only for a holder or state event older than one seen before. */
  admits (event) {
    return this.observe(event.companyId, event.epoch) || !LEASE_STATE_EVENTS.has(event.type)
  }
}
