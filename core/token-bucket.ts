/** A token bucket's state at a moment: `tokens` (fractional) as of `at` (ms since the epoch). */
export interface BucketState {
  tokens: number
  at: number
}

/**
 * A token bucket of `capacity` tokens refilled evenly over `periodMs` (30 per minute: 30 tokens,
 * one every 2 s). Pure: states go in and come out, so they can be stored and moved between replicas.
 */
export class TokenBucket {
  readonly capacity: number
  readonly #refillPerMs: number

  constructor (capacity: number, periodMs: number) {
    this.capacity = capacity
    this.#refillPerMs = capacity / periodMs
  }

  full (now: number): BucketState {
    return { tokens: this.capacity, at: now }
  }

  /** The state at `now`, refilled since it was taken (a clock that went back refills nothing). */
  refill (state: BucketState, now: number): BucketState {
    const elapsed = Math.max(0, now - state.at)
    return { tokens: Math.min(this.capacity, state.tokens + elapsed * this.#refillPerMs), at: Math.max(now, state.at) }
  }

  /** Takes one token, or says how long until one is there. */
  take (
    state: BucketState | undefined,
    now: number
  ): { taken: true, state: BucketState } | { taken: false, state: BucketState, retryAfterMs: number } {
    const current = state ? this.refill(state, now) : this.full(now)
    if (current.tokens >= 1) return { taken: true, state: { tokens: current.tokens - 1, at: current.at } }
    return { taken: false, state: current, retryAfterMs: Math.ceil((1 - current.tokens) / this.#refillPerMs) }
  }

  /** Whether the state has refilled completely by `now` (and need not be kept). */
  isFull (state: BucketState, now: number): boolean {
    return this.refill(state, now).tokens >= this.capacity
  }
}
