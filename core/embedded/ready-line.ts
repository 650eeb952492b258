import type { ChildProcess } from 'node:child_process'

const TAIL_LINES = 20

export interface ReadyLineOptions {
  /** What the process prints once it serves (nats-server: "Server is ready"). */
  readyLine: string
  timeoutMs: number
  /** Its name in error messages. */
  name: string
  /** Each line it prints until it is ready (a debug log). */
  onLine?: (line: string) => void
}

/**
 * Resolves once the process prints `readyLine` on stdout or stderr. It rejects, with the last lines the
 * process printed, if it ends, fails to spawn or takes longer than `timeoutMs`; the caller then stops it.
 * After that its output is still read, but dropped, so a full pipe never blocks it.
 */
export function untilReadyLine (child: ChildProcess, options: ReadyLineOptions): Promise<void> {
  const tail: string[] = []
  const streams = [child.stdout, child.stderr]
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => settle(new Error(`${options.name} did not become ready within ${options.timeoutMs} ms`)),
      options.timeoutMs
    )
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      settle(new Error(`${options.name} exited with ${signal ?? `code ${code}`}`))
    }
    const onError = (err: Error) => settle(err)
    function onOutput (chunk: Buffer) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        tail.push(line)
        if (tail.length > TAIL_LINES) tail.shift()
        options.onLine?.(line)
        if (line.includes(options.readyLine)) settle()
      }
    }
    let settled = false
    function settle (err?: Error) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.off('exit', onExit)
      child.off('error', onError)
      for (const stream of streams) stream?.off('data', onOutput).resume()
      if (err) reject(new Error(`${err.message}\n${tail.join('\n')}`))
      else resolve()
    }
    for (const stream of streams) stream?.on('data', onOutput)
    child.once('exit', onExit)
    child.once('error', onError)
  })
}
