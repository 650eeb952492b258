import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { GATEWAY_NODE_FLAGS } from '../../core/node-flags.ts'
import { serviceEnv } from './services.ts'

const START_TIMEOUT_MS = 30_000

export type ReplicaProcess = ChildProcess & {
  /** Where its HTTP server listens. */
  url: string
  /** Its inspector's WebSocket, when it was started with `--inspect` (a bench profiles it through this). */
  inspectorUrl?: string
}

/**
 * Kills `child` when this process exits, however it exits: a test or bench that throws before its
 * teardown (a browser that would not launch, at the top level) otherwise left its replicas running,
 * each holding its memory and its loops until the machine restarted.
 */
export function killedOnExit<T extends ChildProcess> (child: T): T {
  const kill = () => { child.kill('SIGKILL') }
  process.once('exit', kill)
  child.once('exit', () => { process.off('exit', kill) })
  return child
}

/** Starts `node plugins/server.ts` as a replica process; resolves once it listens. */
export function startReplicaProcess (
  env: Record<string, string>,
  onLog?: (line: string) => void,
  execArgv: string[] = []
): Promise<ReplicaProcess> {
  const child = killedOnExit(spawn(process.execPath, [...execArgv, 'plugins/server.ts'], {
    env: serviceEnv({ HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  return new Promise((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => reject(new Error(`replica did not start within ${START_TIMEOUT_MS} ms\n${output}`)), START_TIMEOUT_MS)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const listening = /Server listening at (http:\/\/[^"\s]+)/.exec(output)
      if (listening) {
        clearTimeout(timer)
        child.stdout?.removeAllListeners('data')
        child.stderr?.removeAllListeners('data')
        // Keep draining so a chatty replica never blocks on a full pipe.
        for (const stream of [child.stdout, child.stderr]) stream?.on('data', (data: Buffer) => onLog?.(data.toString()))
        child.removeAllListeners('exit')
        const inspector = /Debugger listening on (ws:\/\/\S+)/.exec(output)
        resolve(Object.assign(child, { url: listening[1], ...(inspector ? { inspectorUrl: inspector[1] } : {}) }))
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`replica exited with ${code}\n${output}`)) })
  })
}

/** A process's resident memory, in MB (Linux /proc). */
export function rssMbOf (pid: number | undefined): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux this runs on). */
const CLOCK_TICKS_PER_S = 100

/** CPU time (ms) a process has used so far in user space and in the kernel (Linux /proc); 0 once it is gone. */
export function cpuSplitMsOf (pid: number | undefined): { user: number, system: number } {
  try {
    // The command name may hold spaces and parentheses: the fields after it start at the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { user: (Number(fields[11]) / CLOCK_TICKS_PER_S) * 1000, system: (Number(fields[12]) / CLOCK_TICKS_PER_S) * 1000 }
  } catch {
    return { user: 0, system: 0 }
  }
}

/** CPU time (user and system, ms) a process has used so far (Linux /proc); 0 once it is gone. */
export function cpuMsOf (pid: number | undefined): number {
  const { user, system } = cpuSplitMsOf(pid)
  return user + system
}

/** The processes of this machine running `command` (by /proc's comm, as `pgrep -x`). */
export function pidsNamed (command: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === command
    } catch {
      return false
    }
  })
}

/**
 * The processes of this machine whose command line mentions `path` (Linux /proc): what a gateway started
 * for a DATA_DIR (nats-server -sd <dir>/nats, postgres -D <dir>/pg), whoever their parent is now.
 */
export function processesUsing (path: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return pid !== process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((arg) => arg.includes(path))
    } catch {
      return false
    }
  })
}

/** CPU time (ms) of every process of this machine running `command` (nats-server, postgres). */
export function cpuMsOfAll (command: string): number {
  return pidsNamed(command).reduce((sum, pid) => sum + cpuMsOf(pid), 0)
}

/** CPU time (user and system, ms) this process has used so far. */
export function ownCpuMs (): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

/** Node flags of a benchmark's gateway process: the gateway's own, and with BENCH_CPU_PROFILE=<dir> a CPU profile written there. */
export function benchNodeFlags (): string[] {
  const profileDir = process.env.BENCH_CPU_PROFILE
  return [...GATEWAY_NODE_FLAGS, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])]
}

export function exitOf (child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}
