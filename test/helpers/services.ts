import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { Test } from 'tap'

/**
 * The services CI runs (see README); overridable for other setups. When nothing answers at one of them,
 * `npm test` (test/run.ts) starts one for the run and sets the variable for tap, so the test files, and the
 * gateway processes they spawn with NATS_URL/DATABASE_URL taken from these, all use that one.
 */
export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222'
export const TEST_ADMIN_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export function uniqueName (prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`
}

export function databaseUrlFor (database: string, base = TEST_ADMIN_DATABASE_URL): string {
  const url = new URL(base)
  url.pathname = `/${database}`
  return url.toString()
}

/** A database of this test's own on the shared PostgreSQL, dropped when the test ends. */
export async function createTestDatabase (t: Test): Promise<string> {
  const name = uniqueName('wa_test')
  const admin = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
  await admin.connect()
  await admin.query(`create database ${name}`)
  await admin.end()
  t.teardown(async () => {
    const cleanup = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
    await cleanup.connect()
    await cleanup.query(`drop database if exists ${name} with (force)`)
    await cleanup.end()
  })
  return databaseUrlFor(name)
}

/**
 * The environment for a service process a test starts: tap's coverage hooks (NODE_OPTIONS) are
 * left out, since they install their own signal handlers and would change how the process exits.
 * NODE_ENV is `test` unless given: test-only settings (WA_TRANSPORT=test, WA_CERT_PUBLIC_KEY) need it.
 */
export function serviceEnv (extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NODE_ENV: 'test' }
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key === 'NODE_OPTIONS' || key.startsWith('_TAPJS_') || key.startsWith('TAP')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}
