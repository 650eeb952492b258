/**
 * Which of two reports about a company's holder or connection is current is decided by lease epoch,
 * never by arrival: after a takeover the old holder's last events (its `owner_changed {holder: null}`
 * retried through a NATS cut, a `disconnected` of its closing socket) can arrive after the new
 * holder's, and must not undo them. Every consumer (the webhooks, the dashboard, the session list, a
 * client service) applies this one rule; the dashboard's copy (plugins/dashboard/public/epochs.js) is
 * held to it by test/epoch-order.test.ts.
 */

/**
 * Events that say who holds a company or what state its connection is in. An older epoch's never
 * overrides a newer one's. Messages, receipts and sends are facts, not state: they are never dropped
 * for their epoch (the history picks between copies of one message by epoch itself).
 */
export const LEASE_STATE_EVENTS: ReadonlySet<string> = new Set([
  'owner_changed', 'connected', 'disconnected', 'qr', 'pairing_code', 'logout', 'connection_replaced',
  'reconnect_failed', 'health_check_failed', 'error'
])

/** Companies remembered at most (the least recently seen is forgotten first). */
const DEFAULT_CAPACITY = 100_000

/**
 * The newest lease epoch seen per company. Epoch 0 (or null, or none) means no lease applies (an
 * event no holder produced, a status of a company nobody holds): it is never stale and says nothing
 * about which holder is current, so it neither passes nor moves the mark.
 */
export class NewestEpochs {
  readonly #capacity: number
  readonly #newest = new Map<string, number>()

  constructor (capacity = DEFAULT_CAPACITY) {
    this.#capacity = capacity
  }

  /** The newest epoch seen for the company (0 for none). */
  newest (companyId: string): number {
    return this.#newest.get(companyId) ?? 0
  }

  /** Notes an epoch seen for the company; false when a newer one was seen before (what carried it is stale). */
  observe (companyId: string, epoch: number | null | undefined): boolean {
    if (!epoch) return true
    const newest = this.newest(companyId)
    if (epoch < newest) return false
    // Re-inserted so the map's order is least recently seen first.
    this.#newest.delete(companyId)
    this.#newest.set(companyId, epoch)
    if (this.#newest.size > this.#capacity) this.#newest.delete(this.#newest.keys().next().value!)
    return true
  }

  /**
   * Whether an event is to be applied: false only for a holder or state event of an epoch older than
   * one already seen for its company. Every event with an epoch moves the mark (a message of epoch
   * 7 proves a holder at 7 exists, so a late `owner_changed` of epoch 6 is stale).
   */
  admits (event: { companyId: string, type: string, epoch?: number | null }): boolean {
    return this.observe(event.companyId, event.epoch) || !LEASE_STATE_EVENTS.has(event.type)
  }
}
