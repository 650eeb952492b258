import { createServer, connect, type Server, type Socket } from 'node:net'
import type { Test } from 'tap'

/**
 * A TCP proxy on loopback that a test can cut and restore, to take a real service "down"
 * for one client without touching the service itself.
 */
export class TcpProxy {
  readonly #targetHost: string
  readonly #targetPort: number
  readonly #sockets = new Set<Socket>()
  #server: Server | undefined
  /** While set, bytes are dropped both ways and the connections stay open (a network that loses packets). */
  #blackHole = false
  port = 0

  constructor (target: { host: string, port: number }) {
    this.#targetHost = target.host
    this.#targetPort = target.port
  }

  async start (port = this.port): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.#targetPort, this.#targetHost)
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket)
        socket.on('close', () => this.#sockets.delete(socket))
        socket.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.on('data', (chunk) => { if (!this.#blackHole) upstream.write(chunk) })
      upstream.on('data', (chunk) => { if (!this.#blackHole) client.write(chunk) })
      client.on('end', () => upstream.end())
      upstream.on('end', () => client.end())
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    this.#server = server
    const address = server.address()
    this.port = typeof address === 'object' && address ? address.port : port
  }

  /** Refuses new connections and resets the open ones. */
  async cut (): Promise<void> {
    this.#blackHole = false
    const server = this.#server
    this.#server = undefined
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Passes nothing either way from now on, and closes nothing: requests time out rather than fail. */
  blackHole (): void {
    this.#blackHole = true
  }

  /** Accepts connections again on the same port. */
  restore (): Promise<void> {
    return this.start(this.port)
  }

  close (): Promise<void> {
    return this.cut()
  }
}

/** A proxy to the service at `url` (closed with the test), and the same URL through it. */
export async function behindProxy (t: Test, url: string): Promise<{ proxy: TcpProxy, url: string }> {
  const target = new URL(url)
  const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
  await proxy.start()
  t.teardown(() => proxy.close())
  target.hostname = '127.0.0.1'
  target.port = String(proxy.port)
  return { proxy, url: target.toString() }
}
