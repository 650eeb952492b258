/**
 * What the benches that run a gateway replica process share: a deployment of their own (a database, a
 * NATS namespace, and the settings a replica needs for them), removed afterwards, and the settings that
 * point a replica at a simulator as if it were WhatsApp.
 */
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import type { WhatsAppSimulator } from '../simulator/server.ts'
import { dropNamespace } from '../test/helpers/namespace-cleanup.ts'
import { databaseUrlFor, TEST_ADMIN_DATABASE_URL, TEST_NATS_URL, uniqueName } from '../test/helpers/services.ts'

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
