/**
 * `npm run cluster`: a whole deployment on this machine without Docker: three nats-server nodes
 * clustered with JetStream, one PostgreSQL, three gateway replicas connected to every node, and with
 * WA_SANDBOX=1 one WhatsApp simulator they all share. It prints the URLs and the admin key, and stops
 * everything on Ctrl-C or SIGTERM, leaving no process behind. State lives under DATA_DIR/cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import pino from 'pino'
import { startNatsCluster } from '../../core/embedded/nats-cluster.ts'
import { startEmbeddedPostgres } from '../../core/embedded/postgres.ts'
import { GATEWAY_NODE_FLAGS } from '../../core/node-flags.ts'

const REPLICAS = 3
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
const children: ChildProcess[] = []
let stopping = false
async function stopAll (code: number): Promise<never> {
  if (!stopping) {
    stopping = true
    log.info('stopping the cluster')
    // Replicas first (they hand their companies over), then the services under them.
    await Promise.all(children.map((child) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined)
      child.once('exit', resolve)
      child.kill('SIGTERM')
    })))
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.warn({ err }, 'a service did not stop cleanly'))
  }
  process.exit(code)
}
process.on('SIGINT', () => { void stopAll(0) })
process.on('SIGTERM', () => { void stopAll(0) })

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
    const child = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, '--import', './core/telemetry.ts', 'plugins/server.ts'], {
      env: {
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
      },
      stdio: ['ignore', 'inherit', 'inherit']
    })
    child.once('exit', (code, signal) => { if (!stopping) log.warn({ replica: index + 1, code, signal }, 'a replica ended') })
    children.push(child)
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
  await stopAll(1)
}
