import { defineSettings, inNamespace, type Env, integerIn, milliseconds, token, type ValuesOf } from '../../core/settings.ts'

/** The ownership plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  leaseTtlMs: {
    env: 'LEASE_TTL_MS',
    describe: 'Lifetime of a replica\'s membership key, the lease of all its companies, without a heartbeat (one every quarter of it)',
    expected: 'milliseconds, an integer from 1000 to 600000',
    fallback: () => 15_000,
    parse: integerIn(1_000, 600_000)
  },
  leaseFenceMarginMs: {
    env: 'LEASE_FENCE_MARGIN_MS',
    describe: 'A replica with no acknowledged heartbeat closes its connections this long (plus the close timeout) before its key' +
      ' could expire (capped at a quarter of the TTL)',
    expected: 'milliseconds, a positive integer',
    fallback: () => 1_500,
    parse: milliseconds
  },
  unownedGraceMs: {
    env: 'UNOWNED_GRACE_MS',
    describe: 'How long a company stays unowned before a replica it does not prefer takes it over',
    expected: 'milliseconds, a positive integer',
    fallback: () => 750,
    parse: milliseconds
  },
  acquireConcurrency: {
    env: 'LEASE_ACQUIRE_CONCURRENCY',
    describe: 'Companies a replica takes at once (lease, fencing epoch, connection); the rest wait their turn.' +
      ' More than its PostgreSQL pool serves only makes them wait there, past its timeout',
    expected: 'an integer from 1 to 1000',
    fallback: () => 16,
    parse: integerIn(1, 1000)
  },
  handoffBatch: {
    env: 'HANDOFF_BATCH',
    describe: 'Companies a replica hands off at once to a preferred owner that joined',
    expected: 'an integer from 1 to 1000',
    fallback: () => 5,
    parse: integerIn(1, 1000)
  },
  handoffIntervalMs: {
    env: 'HANDOFF_INTERVAL_MS',
    describe: 'Pause between handoff batches',
    expected: 'milliseconds, a positive integer',
    fallback: () => 200,
    parse: milliseconds
  },
  balanceSlackPct: {
    env: 'BALANCE_SLACK_PCT',
    describe: 'Load a replica may take above its even share of companies when preferred owners are assigned',
    expected: 'an integer percentage from 0 to 100',
    fallback: () => 2,
    parse: integerIn(0, 100)
  },
  leaseBucket: {
    env: 'LEASE_BUCKET',
    describe: 'JetStream KV bucket of the company ownership records (written when a company changes hands)',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: (env: Env) => inNamespace(env, 'leases'),
    parse: token
  },
  membersBucket: {
    env: 'MEMBERS_BUCKET',
    describe: 'JetStream KV bucket of the live replicas: their heartbeats are the leases of their companies',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: (env: Env) => inNamespace(env, 'members'),
    parse: token
  },
  holderWaitMs: {
    env: 'HOLDER_WAIT_MS',
    describe: 'How long a request through a replica waits for a holder while a company desired online is between holders' +
      ' (a handoff); then 503 NOT_CONNECTED',
    expected: 'milliseconds, a positive integer',
    fallback: () => 2_000,
    parse: milliseconds
  },
  testLedgerSubject: {
    env: 'TEST_LEDGER_SUBJECT',
    describe: 'With WA_TRANSPORT=test: a NATS subject where a shared connection ledger answers (multi-process tests and benchmarks)',
    expected: 'a NATS subject',
    fallback: () => undefined,
    parse: (raw: string) => (/^[A-Za-z0-9_.-]+$/.test(raw) ? raw : undefined)
  }
})

export type OwnershipOptions = ValuesOf<typeof settings>
