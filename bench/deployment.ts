/**
 * What the benches that run a gateway replica process share: a deployment of their own (a database, a
 * NATS namespace, and the settings a replica needs for them), removed afterwards, and the settings that
 * point a replica at a simulator as if it were WhatsApp.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import type { WhatsAppSimulator } from '../simulator/server.ts'
import { dropNamespace } from '../test/helpers/namespace-cleanup.ts'
import { killedOnExit } from '../test/helpers/replica-process.ts'
import { databaseUrlFor, serviceEnv, TEST_ADMIN_DATABASE_URL, TEST_NATS_URL, uniqueName } from '../test/helpers/services.ts'
import { waitFor } from '../test/helpers/wait.ts'

/** A database and a NATS namespace of the bench's own; `remove` drops both (every stream and bucket named after it). */
export async function benchDeployment (name: string) {
  const namespace = uniqueName(`${name}bench`)
  const database = uniqueName(`wa_${name}_bench`)
  const admin = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
  await admin.connect()
  await admin.query(`create database ${database}`)
  return {
    namespace,
    /** A replica of this deployment: its own database and namespace, no access control, info logs (it says where it listens). */
    env: {
      NODE_ENV: 'test',
      NATS_URL: TEST_NATS_URL,
      DATABASE_URL: databaseUrlFor(database),
      NATS_NAMESPACE: namespace,
      EVENTS_STREAM: `${namespace.toUpperCase()}_EVENTS`,
      AUTH_MODE: 'off',
      AUTH_STATE_KEYS: `bench:${randomBytes(32).toString('base64')}`,
      LOG_LEVEL: 'info'
    },
    remove: async () => {
      await dropNamespace(TEST_NATS_URL, namespace)
      await admin.query(`drop database if exists ${database} with (force)`)
      await admin.end()
    }
  }
}

/**
 * A replica on the simulator with real Baileys, as the sandbox runs: its address, its key and the CA its
 * media server's certificate comes from. Budgets and the API limit are lifted: a bench measures the path.
 */
export function onSimulator (simulator: WhatsAppSimulator, url: string): Record<string, string> {
  return {
    WA_WS_URL: url,
    WA_CERT_PUBLIC_KEY: simulator.identity.publicKeyHex,
    WA_VERSION: '2.3000.1023223821',
    NODE_EXTRA_CA_CERTS: fileURLToPath(new URL('../simulator/tls/ca.pem', import.meta.url)),
    MESSAGES_PER_MINUTE: '100000',
    API_RATE_LIMIT_MAX: '10000000'
  }
}

/** A company's HTTP API on a replica, as a bench calls it: JSON in and out, anything but 2xx thrown with its body. */
export function companyApi (replicaUrl: string, companyId: string) {
  const base = `${replicaUrl}/api/whatsapp/sessions/${companyId}`
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    })
    const text = await response.text()
    if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${text.slice(0, 300)}`)
    return JSON.parse(text) as Record<string, unknown>
  }
  return { base, call }
}

/**
 * The WhatsApp simulator in a process of its own (`simulator/main.ts`, as `npm run simulator`), on free
 * ports: its control API's URL, the identity replicas trust, and the settings that point a replica at it.
 * Its stderr goes to `onError` (a bench's log file), or nowhere.
 */
export async function simulatorProcess (onError?: (text: string) => void) {
  const child = killedOnExit(spawn(process.execPath, ['simulator/main.ts'], {
    env: serviceEnv({ SIMULATOR_WS_PORT: '0', SIMULATOR_MEDIA_PORT: '0', SANDBOX_CONTROL_PORT: '0' }),
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  let output = ''
  const collect = (chunk: Buffer) => { output += chunk.toString() }
  child.stdout.on('data', collect)
  if (onError) child.stderr.on('data', (chunk: Buffer) => onError(chunk.toString()))
  else child.stderr.resume()
  if (!await waitFor(() => /WA_SANDBOX_URL=(\S+)/.test(output), 30_000)) throw new Error(`no simulator:\n${output}`)
  const controlUrl = /WA_SANDBOX_URL=(\S+)/.exec(output)![1]!
  // Keep draining its output so it never blocks on a full pipe.
  child.stdout.off('data', collect)
  child.stdout.resume()
  const identity = await (await fetch(`${controlUrl}/identity`)).json() as { publicKey: string, wsPort: number }
  const replicaEnv = { WA_WS_URL: `ws://127.0.0.1:${identity.wsPort}/ws/chat`, WA_CERT_PUBLIC_KEY: identity.publicKey }
  return { child, controlUrl, identity, replicaEnv }
}
