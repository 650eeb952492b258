import { setTimeout as sleep } from 'node:timers/promises'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

export interface PacingSettings {
  minIntervalMs: number
  jitterMs: number
  queueMax: number
}

interface Lane {
  /** When the last admitted send of the company goes (performance.now()). */
  lastSlot: number
  waiting: number
}

/**
 * Anti-ban pacing: one lane per company, in which each send gets a slot at least the minimum
 * interval (plus jitter) after the one before. Bounded: a send that would wait past its deadline,
 * or find the lane full, is refused with RATE_LIMITED and the time to retry.
 */
export class Pacing {
  readonly #settings: PacingSettings
  readonly #random: () => number
  readonly #lanes = new Map<string, Lane>()

  constructor (settings: PacingSettings, random: () => number = Math.random) {
    this.#settings = settings
    this.#random = random
  }

  /** Sends waiting in each company's lane. */
  depths (): Map<string, number> {
    return new Map([...this.#lanes].map(([companyId, lane]) => [companyId, lane.waiting]))
  }

  /** Waits for the company's next slot; returns the time waited. */
  async wait (companyId: string, deadline: number): Promise<number> {
    const now = performance.now()
    const lane = this.#lanes.get(companyId) ?? { lastSlot: -Infinity, waiting: 0 }
    this.#lanes.set(companyId, lane)
    const slot = Math.max(now, lane.lastSlot + this.#settings.minIntervalMs + this.#random() * this.#settings.jitterMs)
    if (lane.waiting >= this.#settings.queueMax || slot > deadline) {
      const retryAfter = Math.max(1, Math.ceil((slot - now) / 1000))
      throw new GatewayError(
        ErrorCode.RATE_LIMITED,
        lane.waiting >= this.#settings.queueMax
          ? `company ${companyId} has ${lane.waiting} sends waiting (the most the pacing queue holds)`
          : `company ${companyId}'s next pacing slot is ${Math.round(slot - now)} ms away, beyond the send deadline`,
        { retryAfter, accepted: false }
      )
    }
    lane.lastSlot = slot
    // Its slot is now: it goes at once and never waits in the queue.
    if (slot <= now) return 0
    lane.waiting++
    try {
      await sleep(slot - now)
    } finally {
      lane.waiting--
    }
    return slot - now
  }
}
