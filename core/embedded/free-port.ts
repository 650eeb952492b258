import { createServer, type Server } from 'node:net'

/** Asks the kernel for a free TCP port on loopback. */
export async function freePort (): Promise<number> {
  const [port] = await freePorts(1)
  return port as number
}

/**
 * Asks the kernel for `count` distinct free ports on loopback. All of them are held open until the
 * last is known, so the kernel cannot hand one port out twice (asked one by one, a port closed a
 * moment ago may come back).
 */
export async function freePorts (count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    const ports: number[] = []
    for (let index = 0; index < count; index++) {
      const server = createServer()
      server.unref()
      servers.push(server)
      ports.push(await listenOnAnyPort(server))
    }
    return ports
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  }
}

function listenOnAnyPort (server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address && typeof address === 'object') resolve(address.port)
      else reject(new Error('could not obtain a free port'))
    })
  })
}

/**
 * Whether a server failed to start because its port was taken. A port asked for with freePorts is
 * free when asked, but another process (a parallel test) may bind it before ours does; such a
 * start is retried on new ports.
 */
export function isPortTaken (err: unknown): boolean {
  return err instanceof Error && /address already in use|EADDRINUSE/i.test(err.message)
}
