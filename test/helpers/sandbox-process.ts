/**
 * A gateway process in sandbox mode (WA_SANDBOX: real Baileys against the embedded simulator) on the
 * test services, as a user would run it: for the fuzzer and for checks on what a real process prints.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { killedOnExit } from './replica-process.ts'
import { serviceEnv } from './services.ts'

export const SANDBOX_ADMIN_KEY = `sandbox-admin-${'s'.repeat(32)}`
export const SANDBOX_ADMIN_HEADERS = { authorization: `Bearer ${SANDBOX_ADMIN_KEY}` }
/** The phone that links the sandbox companies. */
export const SANDBOX_LINKED_PHONE = '79001234567'

export interface SandboxReplica {
  child: ChildProcess
  url: string
  controlUrl: string
  /** The last part of everything it printed. */
  output: () => string
  /** Every line it printed, when started with keepAll. */
  lines: () => string[]
  exited: () => boolean
  /** Unhandled rejections the process reported (Node prints them before it ends). */
  unhandled: () => number
  /** Error-level lines of the gateway's own (Baileys' are its business): a failure nobody answered for. */
  errors: () => string[]
}

const UNHANDLED = /unhandledRejection|UnhandledPromiseRejection|unhandled rejection/gi
const OUTPUT_KEPT = 200_000

export async function startSandboxReplica (options: {
  natsUrl: string
  databaseUrl: string
  namespace: string
  env?: Record<string, string>
  keepAll?: boolean
}): Promise<SandboxReplica> {
  const { namespace } = options
  const child = killedOnExit(spawn(process.execPath, ['plugins/server.ts'], {
    env: serviceEnv({
      NATS_URL: options.natsUrl,
      DATABASE_URL: options.databaseUrl,
      NATS_NAMESPACE: namespace,
      EVENTS_STREAM: `${namespace.toUpperCase()}_EVENTS`,
      LEASE_BUCKET: `${namespace}_leases`,
      MEMBERS_BUCKET: `${namespace}_members`,
      IDEMPOTENCY_BUCKET: `${namespace}_idempotency`,
      RATE_BUCKET: `${namespace}_rates`,
      WA_SANDBOX: '1',
      SANDBOX_CONTROL_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      ADMIN_API_KEY: SANDBOX_ADMIN_KEY,
      // Info, for the listening line (and what operators see).
      LOG_LEVEL: 'info',
      ...options.env
    }),
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  let output = ''
  let head = ''
  let exited = false
  let unhandled = 0
  const errors: string[] = []
  const lines: string[] = []
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', (chunk: Buffer) => {
      const text = chunk.toString()
      unhandled += (text.match(UNHANDLED) ?? []).length
      for (const line of text.split('\n')) {
        if (line.includes('"level":50') && !line.includes('"module":"baileys"')) errors.push(line)
        if (options.keepAll && line.length > 0) lines.push(line)
      }
      if (head.length < OUTPUT_KEPT) head += text
      output = (output + text).slice(-OUTPUT_KEPT)
    })
  }
  child.once('exit', () => { exited = true })
  const deadline = Date.now() + 60_000
  for (;;) {
    const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(head)?.[1]
    const controlUrl = /"control":"(http:\/\/[^"]+)"/.exec(head)?.[1]
    if (url && controlUrl) {
      return {
        child,
        url,
        controlUrl,
        output: () => output,
        lines: () => lines,
        exited: () => exited,
        unhandled: () => unhandled,
        errors: () => errors
      }
    }
    if (exited || Date.now() > deadline) throw new Error(`the replica did not start:\n${output.slice(-2_000)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * Initializes a company, scans its QR with the simulated phone and waits until it is connected. Any
 * sandbox gateway will do: one of startSandboxReplica's, or one with an admin key of its own (`headers`).
 */
export async function linkSandboxCompany (
  replica: Pick<SandboxReplica, 'url' | 'controlUrl'>,
  companyId: string,
  headers: Record<string, string> = SANDBOX_ADMIN_HEADERS
): Promise<void> {
  const initializeUrl = `${replica.url}/api/whatsapp/sessions/${companyId}/initialize`
  const init = await fetch(initializeUrl, { method: 'POST', headers })
  const { qr } = await init.json() as { qr?: string }
  if (!qr) throw new Error(`no QR for ${companyId}`)
  await fetch(`${replica.controlUrl}/scan`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ qr, phone: SANDBOX_LINKED_PHONE })
  })
  for (let i = 0; i < 100; i++) {
    const response = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/status`, { headers })
    const status = await response.json() as { connected?: boolean }
    if (status.connected) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${companyId} did not connect`)
}

/** Stops it with SIGTERM (a graceful shutdown) and waits for it to end. */
export async function stopSandboxReplica (replica: SandboxReplica): Promise<void> {
  if (replica.exited()) return
  const ended = new Promise((resolve) => replica.child.once('exit', resolve))
  replica.child.kill('SIGTERM')
  await ended
}
