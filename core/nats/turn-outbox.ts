/**
 * The NATS writes of one event-loop turn, made together. nats.js writes its socket once per
 * microtask checkpoint, so the replies and publishes a busy holder makes in the many microtasks of a
 * turn each became a socket write of their own (socket writes were a third of the holder's busy CPU
 * in bench:send's profile). Queued here, they are made in one synchronous run when the turn ends
 * (setImmediate), which nats.js sends as one write. bench:send, two runs each on a shared machine:
 * write syscalls per send 1.91 → 1.50-1.61, nats-server CPU per send 82-97 → 45-52 µs, send p99 at
 * concurrency 16 27-29 → 14-16 ms.
 */
const queued: (() => void)[] = []

function flush (): void {
  const writes = queued.splice(0)
  for (const write of writes) {
    try {
      write()
    } catch {
      // A write to a connection closing: its caller is gone with it, and NATS drops what it cannot send.
    }
  }
}

/** Makes `write` (a publish or a reply) at the end of this turn, with the turn's others. */
export function atTurnEnd (write: () => void): void {
  if (queued.length === 0) setImmediate(flush)
  queued.push(write)
}
