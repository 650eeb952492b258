import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { freePort } from '../../core/embedded/free-port.ts'
import { waitFor } from './wait.ts'

/** A real proxy server (a child process on loopback) that a test sends traffic through. */
export interface ProxyServer {
  kind: 'http' | 'socks5'
  port: number
  /** The proxy with its credentials: `http://user:pass@127.0.0.1:<port>` or `socks5://user:pass@127.0.0.1:<port>`. */
  url: string
  /** The same proxy named with other credentials (a wrong password). */
  urlWith: (user: string, password: string) => string
  /** How many tunnels to a target the proxy opened so far, counted from its own log (across restarts). */
  tunnels: () => number
  /** The process ends; its port then refuses connections. */
  stop: () => Promise<void>
  /** Starts again on the same port (the proxy comes back). */
  start: () => Promise<void>
}

export interface ProxyOptions {
  user: string
  password: string
  /** The address the proxy's outgoing connections come from (default 127.0.0.2): what the target sees. */
  bind?: string
}

const READY_TIMEOUT_MS = 5_000

/**
 * Process groups of proxies still running. Each runs detached (its own group, so stop ends all of it);
 * should the test process end without its teardowns (an uncaught error, process.exit), they are
 * killed on the way out rather than left listening.
 */
const running = new Set<number>()
process.once('exit', () => {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch { /* already gone */ }
  }
})

/**
 * tinyproxy (HTTP CONNECT, basic auth), listening on 127.0.0.1, connecting out from `bind`. It runs
 * in the foreground (-d) as the current user: without a `User` line it keeps the user it was started
 * as (root here warns and goes on), so it can write its log in the test's temp dir.
 */
export async function startTinyproxy (t: Test, options: ProxyOptions): Promise<ProxyServer> {
  // Its config grammar takes BasicAuth names and passwords of these characters only (conf.c's ALNUM).
  for (const credential of [options.user, options.password]) {
    if (!/^[-A-Za-z0-9._]+$/.test(credential)) {
      throw new Error(`tinyproxy cannot take the credential ${JSON.stringify(credential)}: letters, digits, - . _ only`)
    }
  }
  const dir = tempDir(t, 'tinyproxy-')
  const log = join(dir, 'tinyproxy.log')
  const port = await freePort()
  writeFileSync(join(dir, 'tinyproxy.conf'), [
    `Port ${port}`,
    'Listen 127.0.0.1',
    `Bind ${options.bind ?? '127.0.0.2'}`,
    `BasicAuth ${options.user} ${options.password}`,
    `LogFile "${log}"`,
    // Connect level logs a line per tunnel: `Established connection to host "…" using file descriptor N.`
    'LogLevel Connect',
    `PidFile "${join(dir, 'tinyproxy.pid')}"`,
    'MaxClients 100',
    'Allow 127.0.0.1',
    'DisableViaHeader Yes',
    'Timeout 600',
    // No ConnectPort line: tinyproxy then allows CONNECT to every port (its default).
    ''
  ].join('\n'))
  return managed(t, {
    kind: 'http',
    port,
    options,
    command: ['tinyproxy', '-d', '-c', join(dir, 'tinyproxy.conf')],
    tunnelsSoFar: () => countLines(readIfThere(log), /Established connection to host/)
  })
}

/**
 * microsocks (SOCKS5, username/password auth), listening on 127.0.0.1, connecting out from `bind`.
 * It prints `client[N] <address>: connected to <host>:<port>` per tunnel.
 */
export async function startMicrosocks (t: Test, options: ProxyOptions): Promise<ProxyServer> {
  const port = await freePort()
  return managed(t, {
    kind: 'socks5',
    port,
    options,
    command: ['microsocks', '-i', '127.0.0.1', '-p', String(port), '-u', options.user, '-P', options.password,
      '-b', options.bind ?? '127.0.0.2'],
    fromOutput: /: connected to /
  })
}

interface Launch {
  kind: ProxyServer['kind']
  port: number
  options: ProxyOptions
  command: string[]
  /** Tunnels counted from a log file the proxy writes. */
  tunnelsSoFar?: () => number
  /** Or from what it prints: the lines that match are tunnels. */
  fromOutput?: RegExp
}

/** Runs a proxy as a child process of its own process group, restartable on its port, ended with the test. */
async function managed (t: Test, launch: Launch): Promise<ProxyServer> {
  const { kind, port, options } = launch
  let child: ChildProcess | undefined
  let printed = ''
  const urlWith = (user: string, password: string) =>
    `${kind}://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`

  const start = async (): Promise<void> => {
    if (child) return
    // A port just left may still be held by the kernel (or taken by the old process a moment longer): retry briefly.
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      const started = spawn(launch.command[0]!, launch.command.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
      if (started.pid !== undefined) running.add(started.pid)
      for (const stream of [started.stdout, started.stderr]) stream?.on('data', (chunk: Buffer) => { printed += chunk.toString() })
      const exited = new Promise<void>((resolve) => started.once('exit', () => resolve()))
      started.once('error', () => {})
      if (await listening(port, exited, deadline)) {
        child = started
        return
      }
      await stopProcess(started, exited)
      if (Date.now() > deadline) throw new Error(`${launch.command[0]} did not start on port ${port}: ${printed.slice(-500)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (!running) return
    await stopProcess(running, new Promise<void>((resolve) => {
      if (running.exitCode !== null || running.signalCode !== null) resolve()
      else running.once('exit', () => resolve())
    }))
  }
  await start()
  t.teardown(stop)
  return {
    kind,
    port,
    url: urlWith(options.user, options.password),
    urlWith,
    tunnels: () => launch.tunnelsSoFar ? launch.tunnelsSoFar() : countLines(printed, launch.fromOutput!),
    stop,
    start
  }
}

/** Whether the port accepts connections before the process exits or the deadline passes. */
async function listening (port: number, exited: Promise<void>, deadline: number): Promise<boolean> {
  let gone = false
  void exited.then(() => { gone = true })
  await waitFor(async () => gone || await accepts(port), Math.max(0, deadline - Date.now()), 25)
  return !gone && await accepts(port)
}

function accepts (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Ends the process group (SIGTERM, then SIGKILL), and waits for the process to exit. */
async function stopProcess (child: ChildProcess, exited: Promise<void>): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, name)
    } catch { /* already gone */ }
  }
  signal('SIGTERM')
  const timer = setTimeout(() => signal('SIGKILL'), 2_000)
  await exited
  clearTimeout(timer)
  if (child.pid !== undefined) running.delete(child.pid)
}

function tempDir (t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function readIfThere (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

function countLines (text: string, pattern: RegExp): number {
  return text.split('\n').filter((line) => pattern.test(line)).length
}
