import { spawn, type ChildProcess } from 'node:child_process'
import { access, constants, mkdir } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import type { Logger } from 'pino'
import { freePort } from './free-port.ts'

/** Debian installs nats-server in /usr/sbin, which is not on every user's PATH. */
const EXTRA_BINARY_DIRS = ['/usr/sbin', '/usr/local/sbin']
const READY_LINE = 'Server is ready'
const STOP_GRACE_MS = 5_000
const LOG_TAIL_LINES = 20

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
  process: ChildProcess
  stop: () => Promise<void>
}

export interface NatsServerOptions {
  storeDir: string
  port?: number
  startTimeoutMs: number
  log?: Logger
  extraArgs?: string[]
}

/**
 * Starts nats-server with JetStream on loopback and resolves once it reports ready.
 * Used for the embedded default and by tests that need a server of their own.
 */
export async function startNatsServer (options: NatsServerOptions): Promise<RunningNats> {
  const binary = await findNatsServer()
  if (!binary) throw new Error(NATS_INSTALL_HINT)
  await mkdir(options.storeDir, { recursive: true })
  const port = options.port ?? await freePort()
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', options.storeDir, ...(options.extraArgs ?? [])]
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const tail: string[] = []

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`nats-server did not become ready within ${options.startTimeoutMs} ms`)),
      options.startTimeoutMs
    )
    function onOutput (chunk: Buffer) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        tail.push(line)
        if (tail.length > LOG_TAIL_LINES) tail.shift()
        options.log?.debug({ nats: line }, 'nats-server')
        if (line.includes(READY_LINE)) {
          clearTimeout(timer)
          resolve()
        }
      }
    }
    function fail (err: Error) {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`${err.message}\n${tail.join('\n')}`))
    }
    child.stdout?.on('data', onOutput)
    child.stderr?.on('data', onOutput)
    child.once('error', fail)
    child.once('exit', (code) => fail(new Error(`nats-server exited with code ${code}`)))
  })
  child.removeAllListeners('exit')
  child.removeAllListeners('error')
  // Keep reading so a full pipe never blocks the server; ready-detection is done.
  child.stdout?.removeAllListeners('data').resume()
  child.stderr?.removeAllListeners('data').resume()

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    process: child,
    stop: () => stopChild(child)
  }
}

/** SIGTERM, then SIGKILL if it lingers; resolves once the process is gone. */
export function stopChild (child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}
