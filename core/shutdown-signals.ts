/** The signals that ask for a graceful shutdown: Ctrl-C, and what process managers send. */
export const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM'] as const satisfies NodeJS.Signals[]

/**
 * How long after the first signal another one is still the same request. A terminal sends Ctrl-C to its
 * whole foreground process group, npm included, and npm passes it on to its script: where npm's script
 * shell execs the command (bash, the /bin/sh of macOS and Fedora), the gateway gets each Ctrl-C twice,
 * a few milliseconds apart. Taken as a second Ctrl-C, the copy would cut the shutdown short.
 */
export const SAME_REQUEST_MS = 1_000

export interface ShutdownSignalHandlers {
  /** The first signal: start the graceful shutdown. */
  shutdown: (signal: NodeJS.Signals) => void
  /** A signal well after the first: someone wants out now. */
  again: (signal: NodeJS.Signals) => void
}

/** Where signals are heard: the process; a test passes an EventEmitter of its own. */
export type SignalSource = Pick<NodeJS.EventEmitter, 'on' | 'off'>

/**
 * Listens for SIGINT and SIGTERM for the rest of the process's life. Keeping one listener throughout
 * matters: a signal that arrives while a process has none gets the default action and kills it without a
 * word (close-with-grace swaps its listeners when it starts closing, which npm's copy could fall into).
 * Returns what removes the listeners.
 */
export function onShutdownSignals (
  handlers: ShutdownSignalHandlers,
  source: SignalSource = process,
  now: () => number = Date.now
): () => void {
  let firstAt: number | undefined
  const listener = (signal: NodeJS.Signals) => {
    if (firstAt === undefined) {
      firstAt = now()
      handlers.shutdown(signal)
    } else if (now() - firstAt >= SAME_REQUEST_MS) {
      handlers.again(signal)
    }
  }
  for (const signal of SHUTDOWN_SIGNALS) source.on(signal, listener)
  return () => { for (const signal of SHUTDOWN_SIGNALS) source.off(signal, listener) }
}
