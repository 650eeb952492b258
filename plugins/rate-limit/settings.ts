import { defineSettings, inNamespace, type Env, flag, integerIn, milliseconds, token, type ValuesOf } from '../../core/settings.ts'

/** The rate-limit plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  messagesPerMinute: {
    env: 'MESSAGES_PER_MINUTE',
    describe: 'Messages (texts and reactions) a company may send per minute (token bucket on the holder; over it: RATE_LIMITED, HTTP 429)',
    expected: 'an integer from 1 to 100000',
    fallback: () => 30,
    parse: integerIn(1, 100_000)
  },
  reactionsPerMinutePerRecipient: {
    env: 'REACTIONS_PER_MINUTE_PER_RECIPIENT',
    describe: 'Reactions a company may send to one phone per minute',
    expected: 'an integer from 1 to 100000',
    fallback: () => 10,
    parse: integerIn(1, 100_000)
  },
  rateBucket: {
    env: 'RATE_BUCKET',
    describe: 'JetStream KV bucket keeping each company\'s rate-limit state, so a takeover does not reset its budget',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: (env: Env) => inNamespace(env, 'rate_limits'),
    parse: token
  },
  pacingEnabled: {
    env: 'PACING_ENABLED',
    describe: 'Anti-ban pacing: queue each company\'s sends and space them out (interval, jitter, typing) instead of rejecting them',
    expected: '1 | 0 | true | false',
    fallback: () => false,
    parse: flag
  },
  pacingMinIntervalMs: {
    env: 'PACING_MIN_INTERVAL_MS',
    describe: 'With pacing: least time between two sends of one company',
    expected: 'milliseconds, a positive integer',
    fallback: () => 2_000,
    parse: milliseconds
  },
  pacingJitterMs: {
    env: 'PACING_JITTER_MS',
    describe: 'With pacing: random extra delay of up to this much on each send',
    expected: 'milliseconds, 0 or more',
    fallback: () => 1_000,
    parse: integerIn(0, 60 * 60 * 1000)
  },
  pacingTypingMs: {
    env: 'PACING_TYPING_MS',
    describe: 'With pacing: how long the company shows "typing…" to the recipient before a text (0: never)',
    expected: 'milliseconds, 0 or more',
    fallback: () => 1_000,
    parse: integerIn(0, 60 * 1000)
  },
  pacingQueueMax: {
    env: 'PACING_QUEUE_MAX',
    describe: 'With pacing: sends one company may have waiting; beyond it (or beyond SEND_TIMEOUT_MS of wait) a send gets RATE_LIMITED',
    expected: 'an integer from 1 to 100000',
    fallback: () => 100,
    parse: integerIn(1, 100_000)
  },
  apiRateLimitMax: {
    env: 'API_RATE_LIMIT_MAX',
    describe: 'Requests one credential (API key or token) or, without one, one IP may make to the HTTP API per window (429 beyond)',
    expected: 'an integer from 1 to 10000000',
    fallback: () => 600,
    parse: integerIn(1, 10_000_000)
  },
  apiRateLimitWindowMs: {
    env: 'API_RATE_LIMIT_WINDOW_MS',
    describe: 'Window of API_RATE_LIMIT_MAX',
    expected: 'milliseconds, a positive integer',
    fallback: () => 60_000,
    parse: milliseconds
  }
})

export type RateLimitOptions = ValuesOf<typeof settings>
