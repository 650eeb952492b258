import {
  defineSettings, inNamespace, type Env, integerIn, milliseconds, oneOf, token, urlWithScheme, type ValuesOf
} from '../../core/settings.ts'
import { HISTORY_SYNC_MODES } from '../../contracts/index.ts'

/** The session-pool plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  waTransport: {
    env: 'WA_TRANSPORT',
    describe: 'Where WhatsApp connections go: `baileys` (WhatsApp Web), or `test`, the in-process double that records' +
      ' and refuses overlapping connections',
    expected: 'baileys | test',
    fallback: () => 'baileys' as const,
    parse: (raw: string) => (raw === 'test' || raw === 'baileys' ? raw : undefined),
    developmentOnly: { reason: 'the test double is not WhatsApp', applies: (value: 'test' | 'baileys') => value === 'test' }
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
      return parts.length === 3 && parts.every((part) => /^\d{1,12}$/.test(part))
        ? parts.map(Number) as [number, number, number]
        : undefined
    }
  },
  waCertPublicKey: {
    env: 'WA_CERT_PUBLIC_KEY',
    describe: 'Hex public key that signs the server certificate, replacing WhatsApp\'s (simulators only)',
    expected: '64 hex characters (a 32-byte key)',
    fallback: () => undefined,
    parse: (raw: string) => (/^[0-9a-fA-F]{64}$/.test(raw) ? raw.toLowerCase() : undefined),
    developmentOnly: { reason: 'it makes Baileys trust a server that is not WhatsApp' }
  },
  waCloseTimeoutMs: {
    env: 'WA_CLOSE_TIMEOUT_MS',
    describe: 'How long closing a WhatsApp connection may wait for its closing handshake before the socket is cut.' +
      ' A replica that loses its lease starts closing this much earlier, so the close ends before the lease can pass on',
    expected: 'milliseconds, an integer from 50 to 10000',
    // A closing handshake is one round trip; past a second the socket is cut, which WhatsApp sees as
    // the device going away. Every millisecond here comes off the NATS outage a lease survives.
    fallback: () => 1_000,
    parse: integerIn(50, 10_000)
  },
  qrRotateMs: {
    env: 'QR_ROTATE_MS',
    describe: 'How long each QR code is shown before the next one (Baileys\' qrTimeout); unset: 60 s for the first, 20 s after,' +
      ' as WhatsApp Web does. Each new code is a `qr` event; the dashboard follows them',
    expected: 'milliseconds, a positive integer',
    fallback: () => undefined,
    parse: milliseconds
  },
  mediaReuploadTimeoutMs: {
    env: 'MEDIA_REUPLOAD_TIMEOUT_MS',
    describe: 'How long the holder waits for the phone to upload again a received file WhatsApp no longer has',
    expected: 'milliseconds, a positive integer',
    fallback: () => 30_000,
    parse: milliseconds
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
  authWriteAttempts: {
    env: 'AUTH_WRITE_ATTEMPTS',
    describe: 'Attempts for an auth-state (creds, Signal keys) write that PostgreSQL fails; after the last the error surfaces,' +
      ' it is never dropped',
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
  idempotencyBucket: {
    env: 'IDEMPOTENCY_BUCKET',
    describe: 'JetStream KV bucket of idempotency records: a send repeated with the same key within 24 h returns the first result',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: (env: Env) => inNamespace(env, 'idempotency'),
    parse: token
  },
  healthFailedAfterMs: {
    env: 'HEALTH_FAILED_AFTER_MS',
    describe: 'A held session that stays unhealthy (not connected) this long emits health_check_failed; it never triggers a reconnect',
    expected: 'milliseconds, a positive integer',
    fallback: () => 60_000,
    parse: milliseconds
  },
  maxCompanies: {
    env: 'MAX_COMPANIES',
    describe: 'Companies this deployment may hold; initializing one more answers 409 LIMIT_REACHED',
    expected: 'an integer from 1 to 1000000',
    fallback: () => 10_000,
    parse: integerIn(1, 1_000_000)
  },
  historySync: {
    env: 'HISTORY_SYNC',
    describe: 'What a newly linked number brings of its history: `off`, `recent` (what WhatsApp sends a new device by default:' +
      ' recent chats and messages) or `full` (WhatsApp is asked for all of it). A company may choose otherwise at initialize',
    expected: 'off | recent | full',
    fallback: () => 'recent' as const,
    parse: oneOf(HISTORY_SYNC_MODES)
  },
  historySyncDays: {
    env: 'HISTORY_SYNC_DAYS',
    describe: 'History messages older than this many days are not imported; unset: no limit (MESSAGE_RETENTION_DAYS still applies).' +
      ' A company may choose otherwise at initialize',
    expected: 'an integer from 1 to 36500',
    fallback: () => undefined,
    parse: integerIn(1, 36_500)
  }
})

export type SessionPoolOptions = ValuesOf<typeof settings>
