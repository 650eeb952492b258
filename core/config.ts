import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { isSupportedCountry, type CountryCode } from 'libphonenumber-js'
import { DEFAULT_NAMESPACE } from '../contracts/subjects.ts'

/** Thrown when the environment cannot be turned into a valid configuration; names the variable and the form expected. */
export class ConfigError extends Error {
  readonly variable: string

  constructor (variable: string, expected: string, got: string) {
    super(`${variable}: expected ${expected}, got ${JSON.stringify(got)}`)
    this.name = 'ConfigError'
    this.variable = variable
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
type LogLevel = (typeof LOG_LEVELS)[number]

/** A replica id ends up in NATS subjects and KV keys, so it is held to a subject token's alphabet. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

export interface Config {
  /** Unset means: start an embedded nats-server under dataDir. */
  natsUrl: string | undefined
  /** Unset means: start an embedded PostgreSQL under dataDir. */
  databaseUrl: string | undefined
  httpHost: string
  httpPort: number
  replicaId: string
  defaultCountry: CountryCode
  logLevel: LogLevel
  /** Feature plugins (by name) that are not loaded. */
  disabledPlugins: string[]
  dataDir: string
  shutdownTimeoutMs: number
  readinessTimeoutMs: number
  natsRequestTimeoutMs: number
  /** Longest a NATS handler may take to finish while the service shuts down. */
  handlerDrainTimeoutMs: number
  dbPoolMax: number
  /** Longest wait for a pooled connection, and for one query, before PostgreSQL counts as failing. */
  dbAcquireTimeoutMs: number
  dbQueryTimeoutMs: number
  embeddedStartTimeoutMs: number
  /** Lifetime of a company lease without renewal; renewals run every third of it. */
  leaseTtlMs: number
  /** A holder closes its connection this long before its lease could expire on the server. */
  leaseFenceMarginMs: number
  /** How long a company must stay unowned before a replica it does not prefer takes it. */
  unownedGraceMs: number
  /** Companies a replica hands off at once when the preferred owners change. */
  handoffBatch: number
  handoffIntervalMs: number
  /** Allowed load above the even share when assigning preferred owners. */
  balanceSlackPct: number
  leaseBucket: string
  membersBucket: string
  /** Where the WhatsApp connections go: Baileys, or `test`, the in-process double with its overlap ledger. */
  waTransport: 'baileys' | 'test'
  waWsUrl: string | undefined
  waVersion: [number, number, number] | undefined
  waCertPublicKey: string | undefined
  /** Run against an embedded WhatsApp simulator (never in production). */
  waSandbox: boolean
  sandboxControlPort: number
  /** Reconnect backoff after a transient close (428, 408, 503, 500): base, doubling, with jitter. */
  reconnectBaseMs: number
  reconnectMaxAttempts: number
  /** Failures inside the window that open the circuit breaker, and how long it stays open. */
  breakerThreshold: number
  breakerWindowMs: number
  breakerCooldownMs: number
  /** How long a pairing code stays valid, and how long initialize waits for a QR or a connection. */
  pairingCodeTtlMs: number
  initializeTimeoutMs: number
  /** Longest wait for WhatsApp to accept a message. */
  sendTimeoutMs: number
  /** JetStream stream that keeps the events (wa.evt.>) for replay and deduplication. */
  eventsStream: string
  eventsDuplicateWindowMs: number
  /** Attempts, and the first pause between them (doubling), for an auth-state write PostgreSQL refused. */
  authWriteAttempts: number
  authWriteBackoffMs: number
  /** When set, the test transport checks overlaps with a ledger served on this NATS subject (multi-process tests). */
  testLedgerSubject: string | undefined
  /** KV bucket of idempotency records (24 h), so a repeated send returns the first result on any replica. */
  idempotencyBucket: string
  /** WhatsApp budgets, enforced on the holder as token buckets kept in KV (they survive a failover). */
  messagesPerMinute: number
  reactionsPerMinutePerRecipient: number
  rateBucket: string
  /** Anti-ban pacing: a per-company queue that spaces sends out instead of rejecting them. */
  pacingEnabled: boolean
  pacingMinIntervalMs: number
  pacingJitterMs: number
  pacingTypingMs: number
  pacingQueueMax: number
  /** Public HTTP API limit, per API key (x-api-key) or IP; separate from the WhatsApp budgets. */
  apiRateLimitMax: number
  apiRateLimitWindowMs: number
  /** Company the old `POST /api/whatsapp/reaction` uses when its body names none. */
  defaultCompanyId: string | undefined
  /** How long an HTTP request waits for a holder while a company desired online is between holders. */
  holderWaitMs: number
  /** First token of every subject (`wa`): one per deployment sharing a NATS account. */
  natsNamespace: string
  /** Log every HTTP request and response (Fastify's request logging). */
  logRequests: boolean
  /** A `company` label on per-company metrics, for at most this many companies (the rest are `other`); 0: no label. */
  metricsCompanyLabels: number
  /** How long the cluster-wide JSON metrics wait for the replicas' answers. */
  metricsGatherTimeoutMs: number
  /** A held session unhealthy this long emits health_check_failed (passive: nothing reconnects). */
  healthFailedAfterMs: number
}

type Env = Record<string, string | undefined>

interface Setting<T> {
  env: string
  describe: string
  expected: string
  fallback: (env: Env) => T
  parse: (raw: string) => T | undefined
}

function integerIn (min: number, max: number) {
  return (raw: string) => {
    if (!/^\d+$/.test(raw)) return undefined
    const value = Number(raw)
    return value >= min && value <= max ? value : undefined
  }
}

const milliseconds = integerIn(1, 24 * 60 * 60 * 1000)
const flag = (raw: string) => (['1', 'true'].includes(raw) ? true : ['0', 'false'].includes(raw) ? false : undefined)

function urlWithScheme (schemes: string[]) {
  return (raw: string) => {
    // NATS accepts a comma-separated server list; each entry must parse on its own.
    const entries = raw.split(',').map((entry) => entry.trim())
    const ok = entries.every((entry) => {
      try {
        return schemes.includes(new URL(entry).protocol.replace(/:$/, ''))
      } catch {
        return false
      }
    })
    return ok ? raw : undefined
  }
}

/**
 * Every setting the service reads, in one table: the README's configuration section is this table,
 * and no other module reads process.env.
 */
export const SETTINGS = {
  natsUrl: {
    env: 'NATS_URL',
    describe: 'NATS server URL(s), comma-separated. Unset: start a local nats-server with JetStream under DATA_DIR/nats',
    expected: 'nats://host:port[,nats://host:port…]',
    fallback: () => undefined,
    parse: urlWithScheme(['nats', 'tls', 'ws', 'wss'])
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    describe: 'PostgreSQL URL. Unset: start an embedded PostgreSQL under DATA_DIR/pg',
    expected: 'postgres://user[:password]@host:port/database',
    fallback: () => undefined,
    parse: urlWithScheme(['postgres', 'postgresql'])
  },
  httpHost: {
    env: 'HTTP_HOST',
    describe: 'Address the HTTP server listens on',
    expected: 'a host name or IP address',
    fallback: () => '0.0.0.0',
    parse: (raw: string) => (/^[A-Za-z0-9.:_-]+$/.test(raw) ? raw : undefined)
  },
  httpPort: {
    env: 'HTTP_PORT',
    describe: 'TCP port of the HTTP server (0 picks a free one)',
    expected: 'an integer from 0 to 65535',
    fallback: () => 3000,
    parse: integerIn(0, 65535)
  },
  replicaId: {
    env: 'REPLICA_ID',
    describe: 'This replica\'s name in the cluster (NATS connection name, lease holder)',
    expected: '1-64 characters of [A-Za-z0-9_-]',
    fallback: () => `${hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 50)}-${process.pid}`,
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
  },
  defaultCountry: {
    env: 'DEFAULT_COUNTRY',
    describe: 'Country assumed for phone numbers written without a country code',
    expected: 'an ISO 3166-1 alpha-2 code that libphonenumber-js supports, e.g. RU',
    fallback: () => 'RU' as CountryCode,
    parse: (raw: string) => {
      const code = raw.toUpperCase()
      return isSupportedCountry(code) ? code : undefined
    }
  },
  logLevel: {
    env: 'LOG_LEVEL',
    describe: 'pino log level',
    expected: LOG_LEVELS.join(' | '),
    fallback: () => 'info' as LogLevel,
    parse: (raw: string) => LOG_LEVELS.find((level) => level === raw)
  },
  disabledPlugins: {
    env: 'DISABLED_PLUGINS',
    describe: 'Feature plugins not to load, comma-separated (e.g. `metrics,reactions`)',
    expected: 'a comma-separated list of plugin names',
    fallback: () => [] as string[],
    parse: (raw: string) => {
      const names = raw.split(',').map((name) => name.trim()).filter(Boolean)
      return names.every((name) => /^[a-z][a-z0-9-]*$/.test(name)) ? names : undefined
    }
  },
  dataDir: {
    env: 'DATA_DIR',
    describe: 'Folder for the embedded nats-server and PostgreSQL data',
    expected: 'a path',
    fallback: () => resolve('.data'),
    parse: (raw: string) => resolve(raw)
  },
  shutdownTimeoutMs: {
    env: 'SHUTDOWN_TIMEOUT_MS',
    describe: 'Longest a graceful shutdown may take before the process exits anyway',
    expected: 'milliseconds, a positive integer',
    fallback: () => 10_000,
    parse: milliseconds
  },
  readinessTimeoutMs: {
    env: 'READINESS_TIMEOUT_MS',
    describe: 'How long /readyz waits for NATS and PostgreSQL to answer',
    expected: 'milliseconds, a positive integer',
    fallback: () => 1_000,
    parse: milliseconds
  },
  natsRequestTimeoutMs: {
    env: 'NATS_REQUEST_TIMEOUT_MS',
    describe: 'Default deadline of a NATS request the gateway makes',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5_000,
    parse: milliseconds
  },
  handlerDrainTimeoutMs: {
    env: 'HANDLER_DRAIN_TIMEOUT_MS',
    describe: 'How long shutdown waits for NATS handlers still running',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5_000,
    parse: milliseconds
  },
  dbPoolMax: {
    env: 'DB_POOL_MAX',
    describe: 'Largest number of PostgreSQL connections per replica',
    expected: 'an integer from 1 to 1000',
    fallback: () => 10,
    parse: integerIn(1, 1000)
  },
  dbAcquireTimeoutMs: {
    env: 'DB_ACQUIRE_TIMEOUT_MS',
    describe: 'Longest wait for a PostgreSQL connection from the pool before the operation fails',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5_000,
    parse: milliseconds
  },
  dbQueryTimeoutMs: {
    env: 'DB_QUERY_TIMEOUT_MS',
    describe: 'Longest a PostgreSQL query may take before it fails (a dead connection must not hang a write)',
    expected: 'milliseconds, a positive integer',
    fallback: () => 10_000,
    parse: milliseconds
  },
  embeddedStartTimeoutMs: {
    env: 'EMBEDDED_START_TIMEOUT_MS',
    describe: 'How long to wait for an embedded nats-server or PostgreSQL to come up',
    expected: 'milliseconds, a positive integer',
    fallback: () => 60_000,
    parse: milliseconds
  },
  leaseTtlMs: {
    env: 'LEASE_TTL_MS',
    describe: 'Lifetime of a company lease in the KV bucket without renewal (renewed every third of it)',
    expected: 'milliseconds, an integer from 1000 to 600000',
    fallback: () => 15_000,
    parse: integerIn(1_000, 600_000)
  },
  leaseFenceMarginMs: {
    env: 'LEASE_FENCE_MARGIN_MS',
    describe: 'A holder with no acknowledged renewal closes its connection this long before the lease could expire (capped at a quarter of the TTL)',
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
    describe: 'JetStream KV bucket of the company leases',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: () => 'wa_leases',
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
  },
  membersBucket: {
    env: 'MEMBERS_BUCKET',
    describe: 'JetStream KV bucket of the live replicas',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: () => 'wa_members',
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
  },
  waTransport: {
    env: 'WA_TRANSPORT',
    describe: 'Where WhatsApp connections go: `baileys` (WhatsApp Web), or `test`, the in-process double that records and refuses overlapping connections',
    expected: 'baileys | test',
    fallback: () => 'baileys' as const,
    parse: (raw: string) => (raw === 'test' || raw === 'baileys' ? raw : undefined)
  },
  waWsUrl: {
    env: 'WA_WS_URL',
    describe: 'WebSocket URL Baileys connects to instead of WhatsApp\'s (e.g. a simulator)',
    expected: 'a ws:// or wss:// URL',
    fallback: () => undefined,
    parse: urlWithScheme(['ws', 'wss'])
  },
  waVersion: {
    env: 'WA_VERSION',
    describe: 'WhatsApp Web version Baileys announces, so start-up needs no network fetch',
    expected: 'three numbers, e.g. 2.3000.1023223821',
    fallback: () => undefined,
    parse: (raw: string) => {
      const parts = raw.split('.')
      return parts.length === 3 && parts.every((part) => /^\d{1,12}$/.test(part)) ? parts.map(Number) as [number, number, number] : undefined
    }
  },
  waSandbox: {
    env: 'WA_SANDBOX',
    describe: 'Run against an embedded WhatsApp simulator instead of WhatsApp: link a fake phone through its control API (refused with NODE_ENV=production)',
    expected: '1 | 0 | true | false',
    fallback: () => false,
    parse: (raw: string) => (['1', 'true'].includes(raw) ? true : ['0', 'false'].includes(raw) ? false : undefined)
  },
  sandboxControlPort: {
    env: 'SANDBOX_CONTROL_PORT',
    describe: 'With WA_SANDBOX: port of the simulator\'s control API (scan a QR, log a device out, …)',
    expected: 'an integer from 0 to 65535',
    fallback: () => 3001,
    parse: integerIn(0, 65535)
  },
  waCertPublicKey: {
    env: 'WA_CERT_PUBLIC_KEY',
    describe: 'Hex public key that signs the server certificate, replacing WhatsApp\'s (simulators only; refused with NODE_ENV=production)',
    expected: '64 hex characters (a 32-byte key)',
    fallback: () => undefined,
    parse: (raw: string) => (/^[0-9a-fA-F]{64}$/.test(raw) ? raw.toLowerCase() : undefined)
  },
  reconnectBaseMs: {
    env: 'RECONNECT_BASE_MS',
    describe: 'First reconnect delay after a transient close (428, 408, 503, 500); doubles each attempt, with jitter',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5_000,
    parse: milliseconds
  },
  reconnectMaxAttempts: {
    env: 'RECONNECT_MAX_ATTEMPTS',
    describe: 'Reconnect attempts after a transient close before a reconnect_failed event',
    expected: 'an integer from 1 to 100',
    fallback: () => 5,
    parse: integerIn(1, 100)
  },
  breakerThreshold: {
    env: 'BREAKER_THRESHOLD',
    describe: 'Connection failures inside BREAKER_WINDOW_MS that open a company\'s circuit breaker',
    expected: 'an integer from 1 to 1000',
    fallback: () => 5,
    parse: integerIn(1, 1000)
  },
  breakerWindowMs: {
    env: 'BREAKER_WINDOW_MS',
    describe: 'Window in which connection failures are counted for the circuit breaker',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5 * 60_000,
    parse: milliseconds
  },
  breakerCooldownMs: {
    env: 'BREAKER_COOLDOWN_MS',
    describe: 'How long an open circuit breaker keeps a company from connecting',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5 * 60_000,
    parse: milliseconds
  },
  pairingCodeTtlMs: {
    env: 'PAIRING_CODE_TTL_MS',
    describe: 'How long a pairing code is valid',
    expected: 'milliseconds, a positive integer',
    fallback: () => 60_000,
    parse: milliseconds
  },
  initializeTimeoutMs: {
    env: 'INITIALIZE_TIMEOUT_MS',
    describe: 'How long initialize waits for the first QR, pairing code or connection',
    expected: 'milliseconds, a positive integer',
    fallback: () => 30_000,
    parse: milliseconds
  },
  sendTimeoutMs: {
    env: 'SEND_TIMEOUT_MS',
    describe: 'Longest wait for WhatsApp to accept a message before the send fails with TIMEOUT',
    expected: 'milliseconds, a positive integer',
    fallback: () => 15_000,
    parse: milliseconds
  },
  eventsStream: {
    env: 'EVENTS_STREAM',
    describe: 'JetStream stream keeping the events (<namespace>.evt.>) for replay and deduplication (default: WA_EVENTS, or <NAMESPACE>_EVENTS)',
    expected: 'a stream name of [A-Za-z0-9_-]',
    fallback: (env: Env) => env.NATS_NAMESPACE && env.NATS_NAMESPACE !== DEFAULT_NAMESPACE ? `${env.NATS_NAMESPACE.toUpperCase()}_EVENTS` : 'WA_EVENTS',
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
  },
  eventsDuplicateWindowMs: {
    env: 'EVENTS_DUPLICATE_WINDOW_MS',
    describe: 'Window in which JetStream drops an event published twice with the same id',
    expected: 'milliseconds, a positive integer',
    fallback: () => 10 * 60_000,
    parse: milliseconds
  },
  authWriteAttempts: {
    env: 'AUTH_WRITE_ATTEMPTS',
    describe: 'Attempts for an auth-state (creds, Signal keys) write that PostgreSQL fails; after the last the error surfaces, it is never dropped',
    expected: 'an integer from 1 to 100',
    fallback: () => 5,
    parse: integerIn(1, 100)
  },
  authWriteBackoffMs: {
    env: 'AUTH_WRITE_BACKOFF_MS',
    describe: 'First pause before retrying a failed auth-state write; it doubles each attempt',
    expected: 'milliseconds, a positive integer',
    fallback: () => 200,
    parse: milliseconds
  },
  testLedgerSubject: {
    env: 'TEST_LEDGER_SUBJECT',
    describe: 'With WA_TRANSPORT=test: a NATS subject where a shared connection ledger answers (multi-process tests and benchmarks)',
    expected: 'a NATS subject',
    fallback: () => undefined,
    parse: (raw: string) => (/^[A-Za-z0-9_.-]+$/.test(raw) ? raw : undefined)
  },
  idempotencyBucket: {
    env: 'IDEMPOTENCY_BUCKET',
    describe: 'JetStream KV bucket of idempotency records: a send repeated with the same key within 24 h returns the first result',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: () => 'wa_idempotency',
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
  },
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
    fallback: () => 'wa_rate_limits',
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
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
    describe: 'Requests one API key (x-api-key header) or IP may make to the HTTP API per window (429 beyond)',
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
  },
  logRequests: {
    env: 'LOG_REQUESTS',
    describe: 'Log every HTTP request and its response at info level (off: only failures are logged)',
    expected: '1 | 0 | true | false',
    fallback: () => false,
    parse: flag
  },
  natsNamespace: {
    env: 'NATS_NAMESPACE',
    describe: 'First token of every subject; deployments sharing a NATS account (staging and production, parallel tests) each need their own',
    expected: '1-64 characters of [A-Za-z0-9_-]',
    fallback: () => DEFAULT_NAMESPACE,
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
  },
  metricsCompanyLabels: {
    env: 'METRICS_COMPANY_LABELS',
    describe: 'Put a company label on per-company Prometheus metrics for at most this many companies (later ones are counted as "other"); 0 turns the label off',
    expected: 'an integer from 0 to 100000',
    fallback: () => 0,
    parse: integerIn(0, 100_000)
  },
  metricsGatherTimeoutMs: {
    env: 'METRICS_GATHER_TIMEOUT_MS',
    describe: 'How long GET /api/whatsapp/metrics waits for the other replicas; the reply names those that did not answer',
    expected: 'milliseconds, a positive integer',
    fallback: () => 1_000,
    parse: milliseconds
  },
  healthFailedAfterMs: {
    env: 'HEALTH_FAILED_AFTER_MS',
    describe: 'A held session that stays unhealthy (not connected) this long emits health_check_failed; it never triggers a reconnect',
    expected: 'milliseconds, a positive integer',
    fallback: () => 60_000,
    parse: milliseconds
  },
  holderWaitMs: {
    env: 'HOLDER_WAIT_MS',
    describe: 'How long a request through a replica waits for a holder while a company desired online is between holders (a handoff); then 503 NOT_CONNECTED',
    expected: 'milliseconds, a positive integer',
    fallback: () => 2_000,
    parse: milliseconds
  },
  defaultCompanyId: {
    env: 'DEFAULT_COMPANY_ID',
    describe: 'Company the old POST /api/whatsapp/reaction uses when its body has no companyId (unset: companyId is required)',
    expected: '1-64 characters of [A-Za-z0-9_-]',
    fallback: () => undefined,
    parse: (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)
  },
} satisfies { [K in keyof Config]: Setting<Config[K]> }

/** Reads the environment into a Config; throws ConfigError for the first bad value. */
export function loadConfig (env: Env = process.env): Config {
  const config: Partial<Record<keyof Config, unknown>> = {}
  for (const [key, setting] of Object.entries(SETTINGS) as [keyof Config, Setting<unknown>][]) {
    const raw = env[setting.env]
    if (raw === undefined || raw.trim() === '') {
      config[key] = setting.fallback(env)
      continue
    }
    const value = setting.parse(raw.trim())
    if (value === undefined) throw new ConfigError(setting.env, setting.expected, raw)
    config[key] = value
  }
  if (env.NODE_ENV === 'production' && config.waSandbox === true) {
    throw new ConfigError('WA_SANDBOX', 'unset when NODE_ENV=production (the sandbox is a fake WhatsApp)', String(env.WA_SANDBOX))
  }
  if (env.NODE_ENV === 'production' && config.waCertPublicKey !== undefined) {
    throw new ConfigError('WA_CERT_PUBLIC_KEY', 'unset when NODE_ENV=production (it makes Baileys trust a server that is not WhatsApp)', String(env.WA_CERT_PUBLIC_KEY))
  }
  return config as Config
}

/** A config for code that needs one without an environment (tests, tools), with overrides applied. */
export function configWith (overrides: Partial<Config>, env: Env = {}): Config {
  return { ...loadConfig(env), ...overrides }
}
