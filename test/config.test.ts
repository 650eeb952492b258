import t from 'tap'
import { spawnSync } from 'node:child_process'
import { serviceEnv } from './helpers/services.ts'
import { CORE_SETTINGS, loadConfig as loadCoreConfig } from '../core/config.ts'
import type { SettingsTable } from '../core/settings.ts'
import { loadGatewayConfig as loadConfig, plugins } from '../plugins/index.ts'

/** Every table: the core's and each plugin's. */
const SETTINGS: SettingsTable = Object.assign({}, CORE_SETTINGS, ...plugins.map((plugin) => plugin.settings ?? {}))

t.test('defaults apply when nothing is set', async (t) => {
  const config = loadConfig({})
  t.equal(config.natsUrl, undefined, 'no NATS_URL means embedded nats-server')
  t.equal(config.databaseUrl, undefined, 'no DATABASE_URL means embedded PostgreSQL')
  t.equal(config.httpPort, 3000)
  t.equal(config.defaultCountry, 'RU')
  t.equal(config.logLevel, 'info')
  t.same(config.disabledPlugins, [])
  t.match(config.replicaId, new RegExp(`-${process.pid}$`), 'replica id is host name + pid')
})

t.test('valid values are parsed into their types', async (t) => {
  const config = loadConfig({
    NATS_URL: 'nats://10.0.0.1:4222, nats://10.0.0.2:4222',
    DATABASE_URL: 'postgresql://u:p@db:5432/app',
    HTTP_PORT: '8080',
    REPLICA_ID: 'gw-1',
    DEFAULT_COUNTRY: 'gb',
    LOG_LEVEL: 'debug',
    DISABLED_PLUGINS: 'metrics, reactions'
  })
  t.equal(config.httpPort, 8080)
  t.equal(config.defaultCountry, 'GB', 'country codes are upper-cased')
  t.same(config.disabledPlugins, ['metrics', 'reactions'])
  t.equal(config.replicaId, 'gw-1')
})

const bad: [string, string, RegExp][] = [
  ['HTTP_PORT', 'eighty', /HTTP_PORT: expected an integer from 0 to 65535, got "eighty"/],
  ['HTTP_PORT', '70000', /HTTP_PORT: expected an integer from 0 to 65535/],
  ['HTTP_PORT', '-1', /HTTP_PORT/],
  ['NATS_URL', 'localhost 4222', /NATS_URL: expected nats:\/\/host:port/],
  ['NATS_URL', 'http://localhost:4222', /NATS_URL/],
  ['DATABASE_URL', 'mysql://localhost/db', /DATABASE_URL: expected postgres:\/\//],
  ['REPLICA_ID', 'a.b', /REPLICA_ID: expected 1-64 characters of \[A-Za-z0-9_-\]/],
  ['REPLICA_ID', 'x'.repeat(65), /REPLICA_ID/],
  ['DEFAULT_COUNTRY', 'XX', /DEFAULT_COUNTRY: expected an ISO 3166-1 alpha-2 code/],
  ['LOG_LEVEL', 'loud', /LOG_LEVEL: expected fatal \| error/],
  ['DISABLED_PLUGINS', 'metrics;phone', /DISABLED_PLUGINS/],
  ['SHUTDOWN_TIMEOUT_MS', '0', /SHUTDOWN_TIMEOUT_MS: expected milliseconds/],
  ['READINESS_TIMEOUT_MS', '1.5', /READINESS_TIMEOUT_MS/],
  ['DB_POOL_MAX', '0', /DB_POOL_MAX/]
]

for (const [variable, value, message] of bad) {
  t.test(`${variable}=${JSON.stringify(value)} stops start-up naming the variable`, async (t) => {
    t.throws(() => loadConfig({ [variable]: value }), { name: 'ConfigError', variable, message })
  })
}

t.test('test settings stay out of production, even with NODE_ENV unset', async (t) => {
  const key = 'ab'.repeat(32)
  for (const NODE_ENV of ['development', 'test']) {
    t.equal(loadConfig({ NODE_ENV, WA_CERT_PUBLIC_KEY: key }).waCertPublicKey, key, `a simulator's key with NODE_ENV=${NODE_ENV}`)
    t.equal(loadConfig({ NODE_ENV, WA_TRANSPORT: 'test' }).waTransport, 'test', `the test double with NODE_ENV=${NODE_ENV}`)
  }
  // Production's required settings are given: what is refused is the test setting alone.
  const sealing = { AUTH_STATE_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}` }
  for (const env of [{}, { NODE_ENV: 'production', ...sealing }, { NODE_ENV: 'staging' }]) {
    t.throws(() => loadConfig({ ...env, WA_CERT_PUBLIC_KEY: key }),
      { variable: 'WA_CERT_PUBLIC_KEY', message: /unset unless NODE_ENV is development or test/ })
    t.throws(() => loadConfig({ ...env, WA_TRANSPORT: 'test' }),
      { variable: 'WA_TRANSPORT', message: /unless NODE_ENV is development or test/ })
  }
  t.equal(loadConfig({ WA_TRANSPORT: 'baileys' }).waTransport, 'baileys', 'WhatsApp itself needs no NODE_ENV')
  t.same(loadConfig({ WA_VERSION: '2.3000.1023223821' }).waVersion, [2, 3000, 1023223821])
  t.throws(() => loadConfig({ WA_VERSION: '2.3000' }), { name: 'ConfigError', variable: 'WA_VERSION' })
  t.throws(() => loadConfig({ WA_WS_URL: 'http://localhost:1' }), { name: 'ConfigError', variable: 'WA_WS_URL' })
})

t.test('every setting has a variable name, a description and an expected form', async (t) => {
  for (const [key, setting] of Object.entries(SETTINGS)) {
    t.match(setting.env, /^[A-Z][A-Z0-9_]+$/, `${key} has an env name`)
    t.ok(setting.describe.length > 10, `${key} is described`)
    t.ok(setting.expected.length > 0, `${key} states its form`)
  }
})

t.test('the server refuses to start on a bad value, naming the variable', async (t) => {
  const result = spawnSync(process.execPath, ['plugins/server.ts'], {
    env: serviceEnv({ HTTP_PORT: 'not-a-port' }),
    encoding: 'utf8',
    timeout: 20_000
  })
  t.equal(result.status, 2, 'exits with the configuration error code')
  t.match(result.stdout + result.stderr, /HTTP_PORT: expected an integer from 0 to 65535, got \\"not-a-port\\"/)
})

t.test('the server caches its compiled modules in NODE_COMPILE_CACHE for the next start', async (t) => {
  const { mkdtemp, readdir, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const cache = await mkdtemp(join(tmpdir(), 'wa-compile-cache-'))
  t.teardown(() => rm(cache, { recursive: true, force: true }))
  const start = () => spawnSync(process.execPath, ['plugins/server.ts'], {
    env: serviceEnv({ HTTP_PORT: 'not-a-port', NODE_COMPILE_CACHE: cache }), encoding: 'utf8', timeout: 20_000
  })
  t.equal(start().status, 2)
  const entries = await readdir(cache, { recursive: true })
  t.ok(entries.some((entry) => entry.startsWith(process.version)), `a cache for this Node version (${entries.slice(0, 3).join(', ')})`)
  t.ok(entries.length > 100, `the gateway's modules and its dependencies are cached (${entries.length} entries)`)
  t.equal(start().status, 2, 'and a start from the cache behaves the same')
})

t.test('docs/configuration.md is what the settings tables make today, and README links to it', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const { CONFIGURATION_PAGE, configurationPage } = await import('../plugins/configuration-page.ts')
  const page = await readFile(CONFIGURATION_PAGE, 'utf8').catch(() => '(no page)')
  t.equal(page, configurationPage(), 'docs/configuration.md matches the settings tables (when it does not: run `npm run docs:config`)')
  for (const setting of Object.values(SETTINGS)) t.match(page, `| \`${setting.env}\` |`, `${setting.env} has a row`)
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  t.match(readme, '](docs/configuration.md)', 'README links to the configuration page')
})

t.test('the sandbox is refused in production', async (t) => {
  t.equal(loadConfig({ WA_SANDBOX: '1' }).waSandbox, true)
  t.equal(loadConfig({}).waSandbox, false)
  t.throws(() => loadConfig({ NODE_ENV: 'production', WA_SANDBOX: 'true' }),
    { name: 'ConfigError', variable: 'WA_SANDBOX', message: /unset when NODE_ENV=production/ })
  t.throws(() => loadConfig({ WA_SANDBOX: 'yes' }), { name: 'ConfigError', variable: 'WA_SANDBOX' })
  t.equal(loadConfig({ WA_SANDBOX: '1', WA_SANDBOX_URL: 'http://simulator:3100' }).waSandboxUrl, 'http://simulator:3100')
  t.throws(() => loadConfig({ WA_SANDBOX_URL: 'simulator:3100' }), { name: 'ConfigError', variable: 'WA_SANDBOX_URL' })
  t.throws(() => loadConfig({ NODE_ENV: 'production', WA_SANDBOX_URL: 'http://simulator:3100' }), { name: 'ConfigError', variable: 'WA_SANDBOX_URL' })
})

t.test('a plugin declares its own settings; two tables claiming one variable is refused at start', async (t) => {
  t.notOk('messagesPerMinute' in loadCoreConfig({}), 'the core alone knows no plugin setting')
  t.equal(loadConfig({ MESSAGES_PER_MINUTE: '7' }).messagesPerMinute, 7, 'the composition reads every plugin\'s table')
  const twice = { settings: { again: { ...CORE_SETTINGS.httpPort } } }
  t.throws(() => loadCoreConfig({}, [twice]), /declared twice/)
})

t.test('a production start loads no simulator code (the sandbox is imported only with WA_SANDBOX)', async (t) => {
  const result = spawnSync(process.execPath, ['--import', './test/helpers/record-modules.ts', 'plugins/server.ts'], {
    env: serviceEnv({ HTTP_PORT: 'not-a-port' }),
    encoding: 'utf8',
    timeout: 20_000
  })
  t.equal(result.status, 2)
  const loaded = /LOADED (.*)/.exec(result.stderr)?.[1].split(' ') ?? []
  t.ok(loaded.some((url) => url.includes('/plugins/session-pool/')), 'the plugins were loaded')
  t.same(loaded.filter((url) => url.includes('/simulator/')), [], 'no module of simulator/')
})

t.test('production refuses to start without an admin key, and refuses AUTH_MODE=off', async (t) => {
  const run = (env: Record<string, string>) => spawnSync(process.execPath, ['plugins/server.ts'], {
    env: serviceEnv({ NODE_ENV: 'production', HTTP_PORT: '0', ...env }), encoding: 'utf8', timeout: 20_000
  })
  const sealingKey = `prod:${Buffer.alloc(32, 1).toString('base64')}`
  const withoutKey = run({ ADMIN_API_KEY: '', AUTH_STATE_KEYS: sealingKey })
  t.equal(withoutKey.status, 2, 'exit code 2')
  t.match(withoutKey.stdout + withoutKey.stderr, /ADMIN_API_KEY: expected set when NODE_ENV=production/)
  const withoutSealing = run({ ADMIN_API_KEY: 'x'.repeat(40), AUTH_STATE_KEYS: '' })
  t.equal(withoutSealing.status, 2, 'no auth-state key: exit code 2')
  t.match(withoutSealing.stdout + withoutSealing.stderr, /AUTH_STATE_KEYS: expected set when NODE_ENV=production/)
  t.throws(
    () => loadConfig({ NODE_ENV: 'production', AUTH_MODE: 'off' }),
    { variable: 'AUTH_MODE', message: /unset when NODE_ENV=production/ }
  )
  t.throws(() => loadConfig({ ADMIN_API_KEY: 'short' }), { name: 'ConfigError', variable: 'ADMIN_API_KEY' })
  const production = { NODE_ENV: 'production', AUTH_STATE_KEYS: sealingKey }
  t.equal(loadConfig(production).docsEnabled, false, 'no /docs in production unless asked')
  t.equal(loadConfig({}).docsEnabled, true)
})
