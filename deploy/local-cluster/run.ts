/**
 * `npm run cluster`: a whole deployment on this machine without Docker: three nats-server nodes
 * clustered with JetStream, one PostgreSQL, three gateway replicas (CLUSTER_REPLICAS) connected to every node, and with
 * WA_SANDBOX=1 one WhatsApp simulator they all share. It prints the URLs and the admin key, and stops
 * everything on Ctrl-C or SIGTERM, leaving no process behind. State lives under DATA_DIR/cluster.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import pino from 'pino'
import { startCompanion, type Companion } from '../../core/embedded/companion.ts'
import { startNatsCluster } from '../../core/embedded/nats-cluster.ts'
import { startEmbeddedPostgres } from '../../core/embedded/postgres.ts'
import { GATEWAY_ENV, GATEWAY_NODE_FLAGS } from '../../core/node-flags.ts'
import { onShutdownSignals } from '../../core/shutdown-signals.ts'

const REPLICAS = Number(process.env.CLUSTER_REPLICAS ?? 3)
/** Past a replica's own bounded shutdown (SHUTDOWN_TIMEOUT_MS, 10 s by default). */
const REPLICA_STOP_GRACE_MS = Number(process.env.SHUTDOWN_TIMEOUT_MS ?? 10_000) + 5_000
const BASE_PORT = Number(process.env.CLUSTER_BASE_PORT ?? 3001)
const CONTROL_PORT = Number(process.env.SANDBOX_CONTROL_PORT ?? 3100)
const sandbox = ['1', 'true'].includes(process.env.WA_SANDBOX ?? '')
const dataDir = join(resolve(process.env.DATA_DIR ?? '.data'), 'cluster')
const log = pino({ level: process.env.LOG_LEVEL ?? 'info' })

/** A secret kept under DATA_DIR/cluster, so restarts keep the same admin key and auth-state key. */
async function kept (name: string, make: () => string): Promise<string> {
  const file = join(dataDir, name)
  const existing = await readFile(file, 'utf8').then((text) => text.trim(), () => '')
  if (existing) return existing
  const value = make()
  await writeFile(file, `${value}\n`, { mode: 0o600 })
  return value
}

await mkdir(dataDir, { recursive: true })
const stops: (() => Promise<void>)[] = []
const replicas: Companion[] = []
let stopping: Promise<void> | undefined
/**
 * Every process here is a companion (core/embedded/companion.ts): Ctrl-C reaches this runner only, which
 * stops the replicas first (they hand their companies over while NATS and PostgreSQL still serve), then the
 * services under them; and were this runner killed, its companions would still end with it.
 */
function stopAll (): Promise<void> {
  stopping ??= (async () => {
    log.info('stopping the cluster')
    await Promise.all(replicas.map((replica) => replica.stop()))
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.warn({ err }, 'a service did not stop cleanly'))
  })()
  return stopping
}
onShutdownSignals({
  shutdown: () => { void stopAll().then(() => process.exit(0)) },
  again: (signal) => {
    log.warn({ signal }, 'signalled again: exiting at once; the cluster\'s processes end with this one')
    process.exit(1)
  }
})

try {
  const cluster = await startNatsCluster({ dir: join(dataDir, 'nats') })
  stops.push(cluster.stop)
  const postgres = await startEmbeddedPostgres(join(dataDir, 'pg'), log)
  stops.push(postgres.stop)
  const adminKey = await kept('admin-key', () => `wak_${randomBytes(32).toString('base64url')}`)
  const authStateKeys = await kept('auth-state-keys', () => `local:${randomBytes(32).toString('base64')}`)

  const sandboxEnv: Record<string, string> = {}
  if (sandbox) {
    const { WhatsAppSimulator } = await import('../../simulator/server.ts')
    const { controlApi } = await import('../../simulator/control.ts')
    const simulator = new WhatsAppSimulator()
    await simulator.start()
    const control = controlApi(simulator)
    await control.listen({ host: '127.0.0.1', port: CONTROL_PORT })
    stops.push(async () => { await control.close(); await simulator.stop() })
    // One simulator for every replica, as WhatsApp is one: they join it by its control API (its key,
    // its ports, and the CA its media server's certificate comes from), as `npm run simulator` users do.
    Object.assign(sandboxEnv, { NODE_ENV: 'development', WA_SANDBOX: '1', WA_SANDBOX_URL: `http://127.0.0.1:${CONTROL_PORT}` })
  }

  for (let index = 0; index < REPLICAS; index++) {
    const args = [...GATEWAY_NODE_FLAGS, '--import', './core/telemetry.ts', 'plugins/server.ts']
    const replica = startCompanion(process.execPath, args, {
      stopSignal: 'SIGTERM',
      stopGraceMs: REPLICA_STOP_GRACE_MS,
      output: 'inherit',
      env: {
        ...GATEWAY_ENV,
        ...process.env,
        WA_SANDBOX: '',
        NATS_URL: cluster.url,
        DATABASE_URL: postgres.url,
        NATS_REPLICAS: '3',
        REPLICA_ID: `replica-${index + 1}`,
        HTTP_PORT: String(BASE_PORT + index),
        ADMIN_API_KEY: adminKey,
        AUTH_STATE_KEYS: authStateKeys,
        ...sandboxEnv
      }
    })
    replica.process.once('exit', (code, signal) => {
      if (!stopping) log.warn({ replica: index + 1, code, signal }, 'a replica ended')
    })
    replicas.push(replica)
  }
  const urls = Array.from({ length: REPLICAS }, (_, index) => `http://localhost:${BASE_PORT + index}`)
  process.stdout.write([
    '',
    'wa-gateway cluster',
    `  NATS:       ${cluster.url}`,
    `  replicas:   ${urls.join('  ')}`,
    ...(sandbox ? [`  simulator:  http://localhost:${CONTROL_PORT} (scan QR codes with POST /scan)`] : []),
    `  admin key:  ${adminKey}`,
    `  try:        curl -H 'authorization: Bearer ${adminKey}' ${urls[0]}/api/whatsapp/cluster`,
    '  Ctrl-C stops everything.',
    ''
  ].join('\n') + '\n')
} catch (err) {
  log.error({ err }, 'the cluster did not start')
  await stopAll()
  process.exit(1)
}
