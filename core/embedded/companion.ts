import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'

/**
 * A companion is a process that lives and dies with the one that started it (its owner): the embedded
 * nats-server and PostgreSQL beside a gateway, or the servers and replicas of `npm run cluster`.
 *
 * It leads a process group of its own, so a terminal's Ctrl-C, which goes to the whole foreground group,
 * reaches the owner only; the owner stops its companions once it no longer needs them (a gateway after it
 * has handed its companies over). Were they in its group, they would die first and leave the owner's
 * shutdown waiting on servers that are gone.
 *
 * Outside the owner's group it must still not outlive the owner, however the owner ends (SIGKILL, OOM
 * killer, crash). A watchdog sees to that: the command runs under `sh`, whose standard input is a pipe
 * whose writing end only the owner holds. When the owner closes it (a stop) or is gone (the kernel closes
 * a dead process's files), a background reader sees end-of-file and sends the service its stop signal. A
 * pid file read at the next start would leave a leftover running until then, or forever without a next
 * start, and could not tell a leftover from a server another live gateway on the same folder still uses.
 *
 * The shell execs the service, so the process spawned is the service itself (its pid, exit code and
 * signal are the service's), and it keeps the default signal dispositions a background job would lose.
 * The reader may signal `$$` even after the service has ended: that pid cannot be reused while the
 * reader lives, as it still names the reader's process group.
 */
const WATCHDOG = `
stop_signal=$1; shift
exec 3<&0 </dev/null
{ while read -r _ <&3; do :; done; kill -s "$stop_signal" $$ 2>/dev/null; } &
exec 3<&-
exec "$@"
`

export interface CompanionOptions {
  /** What makes the service shut down gracefully (PostgreSQL: SIGINT, a fast shutdown). */
  stopSignal: NodeJS.Signals
  /** How long a stop waits before the whole group is killed. */
  stopGraceMs: number
  /** 'pipe' to read what it prints (readiness lines), 'inherit' to pass it through. */
  output: 'pipe' | 'inherit'
  env?: NodeJS.ProcessEnv
  uid?: number
  gid?: number
}

export interface Companion {
  /** The service's process: its exit is the service's. */
  process: ChildProcess
  /** Stops it with its stop signal, then SIGKILL if it lingers; resolves once it is gone. */
  stop: () => Promise<void>
  /** Ends it at once, as a crash would (SIGKILL). */
  kill: () => Promise<void>
}

export function startCompanion (command: string, args: string[], options: CompanionOptions): Companion {
  const stdio: StdioOptions = ['pipe', options.output, options.output]
  const child = spawn('/bin/sh', ['-c', WATCHDOG, 'wa-companion', options.stopSignal.replace(/^SIG/, ''), command, ...args], {
    detached: true,
    stdio,
    env: options.env,
    uid: options.uid,
    gid: options.gid
  })
  // The watchdog may be gone before the pipe is closed; an EPIPE then is no news.
  child.stdin?.on('error', () => {})
  let over = false
  const gone = new Promise<void>((resolve) => {
    const end = () => {
      over = true
      // The reader is still waiting on the pipe after a service that ended by itself; it goes with the group.
      signalGroup(child, 'SIGKILL')
      resolve()
    }
    child.once('exit', end)
    // A spawn that failed (no /bin/sh, a uid it may not take) reports an error and may never report an exit.
    child.once('error', end)
  })
  const ended = () => over || child.exitCode !== null || child.signalCode !== null
  return {
    process: child,
    stop: async () => {
      if (ended()) return
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), options.stopGraceMs)
      child.stdin?.end()
      await gone
      clearTimeout(timer)
    },
    kill: async () => {
      if (ended()) return
      signalGroup(child, 'SIGKILL')
      await gone
    }
  }
}

function signalGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {} // the group is gone already
}
