import { defineSettings, flag, integerIn, milliseconds, type ValuesOf } from '../../core/settings.ts'

/** The webhooks plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  webhookMaxAgeMs: {
    env: 'WEBHOOK_MAX_AGE',
    describe: 'How long an event is retried to a webhook (from the event\'s time) before it goes to that webhook\'s dead letters',
    expected: 'milliseconds, an integer from 1000 to 604800000',
    fallback: () => 24 * 3_600_000,
    parse: integerIn(1_000, 7 * 24 * 3_600_000)
  },
  webhookDisableAfterMs: {
    env: 'WEBHOOK_DISABLE_AFTER',
    describe: 'A webhook failing this long without one success is paused (a webhook_paused event says so)',
    expected: 'milliseconds, an integer from 1000 to 604800000',
    fallback: () => 24 * 3_600_000,
    parse: integerIn(1_000, 7 * 24 * 3_600_000)
  },
  webhookAllowPrivate: {
    env: 'WEBHOOK_ALLOW_PRIVATE',
    describe: 'Let webhooks reach loopback, private, link-local and metadata addresses (tests, a trusted network)',
    expected: '1 | 0 | true | false',
    fallback: () => false,
    parse: flag
  },
  webhookConnectTimeoutMs: {
    env: 'WEBHOOK_CONNECT_TIMEOUT_MS',
    describe: 'How long a webhook delivery may take to connect',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5_000,
    parse: milliseconds
  },
  webhookTimeoutMs: {
    env: 'WEBHOOK_TIMEOUT_MS',
    describe: 'How long a webhook receiver may take to answer a delivery',
    expected: 'milliseconds, a positive integer',
    fallback: () => 10_000,
    parse: milliseconds
  },
  webhookSecretOverlapMs: {
    env: 'WEBHOOK_SECRET_OVERLAP',
    describe: 'After a secret rotation, how long deliveries are signed with the old secret too, so receivers can switch over',
    expected: 'milliseconds, an integer from 0 to 604800000',
    fallback: () => 24 * 3_600_000,
    parse: integerIn(0, 7 * 24 * 3_600_000)
  },
  webhookRetryBaseMs: {
    env: 'WEBHOOK_RETRY_BASE_MS',
    describe: 'First pause after a failed delivery; it doubles with each attempt (with jitter), up to 10 minutes',
    expected: 'milliseconds, a positive integer',
    fallback: () => 1_000,
    parse: milliseconds
  }
})

export type WebhooksOptions = ValuesOf<typeof settings>
