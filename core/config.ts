import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { DEFAULT_NAMESPACE } from '../contracts/index.ts'
import { parseSealingKeys, type SealingKey } from './sealing.ts'
import {
  defineSettings, flag, integerIn, milliseconds, oneOf, readSettings, token, urlWithScheme,
  type Env, type SettingsTable, type ValuesOf
} from './settings.ts'

export { ConfigError } from './settings.ts'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/**
 * The core's settings: connections, HTTP, shutdown and the event stream. Each plugin declares its
 * own table (`settings` in its public module) and receives those values as its options;
 * docs/configuration.md (generated from them) lists every table, and no other module reads process.env.
 */
export const CORE_SETTINGS = defineSettings({
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
    parse: token
  },
  logLevel: {
    env: 'LOG_LEVEL',
    describe: 'pino log level',
    expected: LOG_LEVELS.join(' | '),
    fallback: () => 'info' as (typeof LOG_LEVELS)[number],
    parse: oneOf(LOG_LEVELS)
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
  natsNamespace: {
    env: 'NATS_NAMESPACE',
    describe: 'First token of every subject; deployments sharing a NATS account (staging and production, parallel tests)' +
      ' each need their own',
    expected: '1-64 characters of [A-Za-z0-9_-]',
    fallback: () => DEFAULT_NAMESPACE,
    parse: token
  },
  eventsStream: {
    env: 'EVENTS_STREAM',
    describe: 'JetStream stream keeping the events (<namespace>.evt.>) for replay and deduplication' +
      ' (default: WA_EVENTS, or <NAMESPACE>_EVENTS)',
    expected: 'a stream name of [A-Za-z0-9_-]',
    fallback: (env: Env) => env.NATS_NAMESPACE && env.NATS_NAMESPACE !== DEFAULT_NAMESPACE
      ? `${env.NATS_NAMESPACE.toUpperCase()}_EVENTS`
      : 'WA_EVENTS',
    parse: token
  },
  eventsDuplicateWindowMs: {
    env: 'EVENTS_DUPLICATE_WINDOW_MS',
    describe: 'Window in which JetStream drops an event published twice with the same id',
    expected: 'milliseconds, a positive integer',
    fallback: () => 10 * 60_000,
    parse: milliseconds
  },
  natsReplicas: {
    env: 'NATS_REPLICAS',
    describe: 'Replicas of every KV bucket and of the events stream on a NATS cluster (3 survives losing a node); ' +
      'existing ones are raised to it at start',
    expected: 'an integer from 1 to 5',
    fallback: () => 1,
    parse: integerIn(1, 5)
  },
  eventsMaxAgeMs: {
    env: 'EVENTS_MAX_AGE_MS',
    describe: 'How long the events stream keeps events (message texts included) for replays; QR and pairing-code events go after 60 s',
    expected: 'milliseconds, a positive integer',
    fallback: () => 24 * 60 * 60 * 1000,
    parse: milliseconds
  },
  wsMaxConnections: {
    env: 'WS_MAX_CONNECTIONS',
    describe: 'Events WebSockets one replica serves at once; more are refused with 503',
    expected: 'an integer from 1 to 1000000',
    fallback: () => 10_000,
    parse: integerIn(1, 1_000_000)
  },
  wsMaxConnectionsPerCompany: {
    env: 'WS_MAX_CONNECTIONS_PER_COMPANY',
    describe: 'Events WebSockets of one company one replica serves at once; more are refused with 503',
    expected: 'an integer from 1 to 100000',
    fallback: () => 50,
    parse: integerIn(1, 100_000)
  },
  wsMaxBufferedBytes: {
    env: 'WS_MAX_BUFFERED_BYTES',
    describe: 'Events queued for a WebSocket client that does not read; past it the socket is closed with 1013 (resume with since)',
    expected: 'bytes, an integer from 1024 to 1073741824',
    fallback: () => 1_048_576,
    parse: integerIn(1_024, 1_073_741_824)
  },
  logRequests: {
    env: 'LOG_REQUESTS',
    describe: 'Log every HTTP request and its response at info level (off: only failures are logged)',
    expected: '1 | 0 | true | false',
    fallback: () => false,
    parse: flag
  },
  waSandbox: {
    env: 'WA_SANDBOX',
    describe: 'Run against an embedded WhatsApp simulator instead of WhatsApp: link a fake phone through its control API',
    expected: '1 | 0 | true | false',
    fallback: () => false,
    parse: flag,
    notInProduction: 'the sandbox is a fake WhatsApp'
  },
  waSandboxUrl: {
    env: 'WA_SANDBOX_URL',
    describe: 'With WA_SANDBOX: the control API of a simulator shared by several replicas (`npm run simulator`), ' +
      'instead of one embedded per process',
    expected: 'an http(s) URL',
    fallback: () => undefined as string | undefined,
    parse: urlWithScheme(['http', 'https']),
    notInProduction: 'the sandbox is a fake WhatsApp'
  },
  sandboxControlPort: {
    env: 'SANDBOX_CONTROL_PORT',
    describe: 'With WA_SANDBOX: port of the simulator\'s control API (scan a QR, log a device out, …)',
    expected: 'an integer from 0 to 65535',
    fallback: () => 3001,
    parse: integerIn(0, 65535)
  },
  trustProxy: {
    env: 'TRUST_PROXY',
    describe: 'Behind a load balancer: trust X-Forwarded-For from it, so the API limit and logs see the client\'s IP ' +
      '(`true`, a number of hops, or the proxies\' addresses, comma-separated)',
    expected: 'true | false | a number of hops | IP addresses or CIDRs, comma-separated',
    fallback: () => false as boolean | number | string,
    parse: (raw: string): boolean | number | string | undefined => {
      if (raw === 'true' || raw === 'false') return raw === 'true'
      if (/^\d{1,2}$/.test(raw)) return Number(raw)
      return /^[0-9a-fA-F.:/]+(,\s*[0-9a-fA-F.:/]+)*$/.test(raw) ? raw : undefined
    }
  },
  authMode: {
    env: 'AUTH_MODE',
    describe: 'How requests are authenticated: `keys` (API keys and JWTs), or `off`, which lets every request act for ' +
      'every company (local experiments)',
    expected: 'keys | off',
    fallback: () => 'keys' as const,
    parse: oneOf(['keys', 'off'] as const),
    notInProduction: 'AUTH_MODE=off opens every company to anyone who reaches the port'
  },
  adminApiKey: {
    env: 'ADMIN_API_KEY',
    describe: 'The admin key, plain or as `sha256:<hex>`. Unset outside production: generated under DATA_DIR and printed once; ' +
      'unset in production: start-up fails',
    expected: 'at least 32 characters, or sha256: and 64 hex characters',
    fallback: () => undefined,
    parse: (raw: string) => (/^sha256:[0-9a-fA-F]{64}$/.test(raw) || (!raw.startsWith('sha256:') && raw.length >= 32) ? raw : undefined)
  },
  authJwtJwksUrl: {
    env: 'AUTH_JWT_JWKS_URL',
    describe: 'JWKS of the identity provider whose JWTs are accepted (claims `companies`, `scopes`; `exp` required)',
    expected: 'an https:// or http:// URL',
    fallback: () => undefined,
    parse: urlWithScheme(['https', 'http'])
  },
  authJwtSecret: {
    env: 'AUTH_JWT_SECRET',
    describe: 'Shared secret for HS256 JWTs, when there is no JWKS',
    expected: 'at least 32 characters',
    fallback: () => undefined,
    parse: (raw: string) => (raw.length >= 32 ? raw : undefined)
  },
  authJwtIssuer: {
    env: 'AUTH_JWT_ISSUER',
    describe: 'The `iss` a JWT must carry',
    expected: 'a string',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  authJwtAudience: {
    env: 'AUTH_JWT_AUDIENCE',
    describe: 'The `aud` a JWT must carry',
    expected: 'a string',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  wsAllowedOrigins: {
    env: 'WS_ALLOWED_ORIGINS',
    describe: 'Browser origins allowed to open the events WebSocket, comma-separated (unset: any; services send no Origin)',
    expected: 'a comma-separated list of origins, e.g. https://app.example.com',
    fallback: () => [] as string[],
    parse: (raw: string) => {
      const origins = raw.split(',').map((origin) => origin.trim()).filter(Boolean)
      return origins.every((origin) => /^https?:\/\/[^/\s]+$/.test(origin)) ? origins : undefined
    }
  },
  docsEnabled: {
    env: 'DOCS_ENABLED',
    describe: 'Serve the OpenAPI docs at /docs (default: on, off when NODE_ENV=production)',
    expected: '1 | 0 | true | false',
    fallback: (env: Env) => env.NODE_ENV !== 'production',
    parse: flag
  },
  natsCredsFile: {
    env: 'NATS_CREDS_FILE',
    describe: 'NATS credentials file (JWT and NKey seed) the gateway connects with',
    expected: 'a path',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsNkeySeedFile: {
    env: 'NATS_NKEY_SEED_FILE',
    describe: 'File holding the NKey seed the gateway connects with',
    expected: 'a path',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsUser: {
    env: 'NATS_USER',
    describe: 'NATS user name (with NATS_PASSWORD); credentials in NATS_URL are ignored by the client',
    expected: 'a user name',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsPassword: {
    env: 'NATS_PASSWORD',
    describe: 'NATS password (with NATS_USER)',
    expected: 'a password',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsToken: {
    env: 'NATS_TOKEN',
    describe: 'NATS authentication token',
    expected: 'a token',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsTlsCaFile: {
    env: 'NATS_TLS_CA_FILE',
    describe: 'CA certificate that signs the NATS servers\' certificates (turns TLS on)',
    expected: 'a path',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsTlsCertFile: {
    env: 'NATS_TLS_CERT_FILE',
    describe: 'Client certificate for NATS mutual TLS (with NATS_TLS_KEY_FILE)',
    expected: 'a path',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsTlsKeyFile: {
    env: 'NATS_TLS_KEY_FILE',
    describe: 'Client key for NATS mutual TLS',
    expected: 'a path',
    fallback: () => undefined,
    parse: (raw: string) => raw
  },
  natsInboxPrefix: {
    env: 'NATS_INBOX_PREFIX',
    describe: 'Prefix of the gateway\'s reply subjects (default `_INBOX`), so NATS permissions can give it an inbox of its own',
    expected: 'a subject prefix of [A-Za-z0-9_-.]',
    fallback: () => undefined,
    parse: (raw: string) => (/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(raw) ? raw : undefined)
  },
  authStateKeys: {
    env: 'AUTH_STATE_KEYS',
    describe: 'Keys that seal the auth state and webhook secrets in PostgreSQL (AES-256-GCM), `id:base64` of 32 bytes, ' +
      'comma-separated: the first seals, all open (rotate with `npm run rotate-keys`). Unset outside production: generated under DATA_DIR',
    expected: 'id:base64,… with ids of [A-Za-z0-9_-] and 32-byte keys',
    fallback: () => undefined as SealingKey[] | undefined,
    parse: parseSealingKeys,
    requiredInProduction: 'the keys that seal Baileys\' creds and Signal keys, and webhook secrets, in PostgreSQL'
  }
})

/** The core's configuration (every plugin sees it as `app.config`). */
export type Config = ValuesOf<typeof CORE_SETTINGS>

/** What loadConfig needs of a plugin module: its settings table, if it has one. */
export interface WithSettings {
  settings?: SettingsTable
}

/**
 * Reads the environment into one flat, validated configuration: the core's settings and those of
 * every plugin module given. Throws ConfigError for the first bad value.
 */
export function loadConfig (env: Env = process.env, modules: WithSettings[] = []): Config & Record<string, unknown> {
  const tables = [CORE_SETTINGS as SettingsTable, ...modules.flatMap((module) => (module.settings ? [module.settings] : []))]
  const seen = new Map<string, string>()
  for (const table of tables) {
    for (const [key, setting] of Object.entries(table)) {
      // Two tables claiming one variable or key is a programming error, caught at the first start.
      if (seen.has(key) || [...seen.values()].includes(setting.env)) throw new Error(`setting ${key} (${setting.env}) is declared twice`)
      seen.set(key, setting.env)
    }
  }
  return Object.assign({}, ...tables.map((table) => readSettings(table, env))) as Config & Record<string, unknown>
}
