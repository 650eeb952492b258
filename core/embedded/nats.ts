import { access, constants, mkdir } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import type { Logger } from 'pino'
import { startCompanion } from './companion.ts'
import { freePort, isPortTaken } from './free-port.ts'
import { untilReadyLine } from './ready-line.ts'

/** Debian installs nats-server in /usr/sbin, which is not on every user's PATH. */
const EXTRA_BINARY_DIRS = ['/usr/sbin', '/usr/local/sbin']
const READY_LINE = 'Server is ready'
const STOP_GRACE_MS = 5_000

export const NATS_INSTALL_HINT =
  'nats-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get install nats-server`; ' +
  'or a release from the NATS project), or set NATS_URL to an existing server.'

export async function findNatsServer (): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_BINARY_DIRS].filter(Boolean)
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server')
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

export interface RunningNats {
  url: string
  port: number
  /** Stops it gracefully (SIGTERM, then SIGKILL if it lingers). */
  stop: () => Promise<void>
  /** Ends it at once, as a crash would (SIGKILL). */
  kill: () => Promise<void>
}

export interface NatsServerOptions {
  storeDir: string
  port?: number
  startTimeoutMs: number
  log?: Logger
  extraArgs?: string[]
  /** The server's environment, for a configuration file (`-c` in extraArgs) that reads variables. */
  env?: NodeJS.ProcessEnv
}

/**
 * Starts nats-server with JetStream on loopback and resolves once it reports ready. It runs as a
 * companion (core/embedded/companion.ts): out of the caller's process group, and gone when the caller is.
 * Used for the embedded default, `npm run cluster` and by tests that need a server of their own.
 */
export async function startNatsServer (options: NatsServerOptions): Promise<RunningNats> {
  const binary = await findNatsServer()
  if (!binary) throw new Error(NATS_INSTALL_HINT)
  await mkdir(options.storeDir, { recursive: true })
  // A port of our choosing may be taken between asking and binding; only a caller's own port is final.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnPort(binary, options, options.port ?? await freePort())
    } catch (err) {
      if (options.port !== undefined || !isPortTaken(err) || attempt === 3) throw err
    }
  }
}

async function startOnPort (binary: string, options: NatsServerOptions, port: number): Promise<RunningNats> {
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', options.storeDir, ...(options.extraArgs ?? [])]
  const server = startCompanion(binary, args, { stopSignal: 'SIGTERM', stopGraceMs: STOP_GRACE_MS, output: 'pipe', env: options.env })
  try {
    await untilReadyLine(server.process, {
      readyLine: READY_LINE,
      timeoutMs: options.startTimeoutMs,
      name: 'nats-server',
      onLine: (line) => options.log?.debug({ nats: line }, 'nats-server')
    })
  } catch (err) {
    await server.kill()
    throw err
  }
  return { url: `nats://127.0.0.1:${port}`, port, stop: server.stop, kill: server.kill }
}
