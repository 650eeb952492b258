import { createServer, type Server as TcpServer, type Socket } from 'node:net'
import type { EventEmitter } from 'node:events'

/** One TCP connection to the simulator's WebSocket (`ws`) or media (`media`) server, and where it came from. */
export interface PeerConnection {
  server: 'ws' | 'media'
  /** The client's address, plain IPv4 when it is one (`::ffff:127.0.0.2` is recorded as `127.0.0.2`). */
  address: string
  /** Refused: its address was not allowed, and the socket was destroyed before any byte was read. */
  refused: boolean
  at: number
  /** On the WebSocket server: the linked device that logged in on this connection (`<phone>:<device>`), once known. */
  device?: string
}

/** A server listening through the gate: its port, and how it stops (every connection it accepted is ended). */
export interface GatedListener {
  port: number
  close: () => Promise<void>
}

/** `::ffff:127.0.0.2` (an IPv4 client of a dual-stack socket) as `127.0.0.2`. */
export function plainAddress (address: string | undefined): string {
  if (!address) return ''
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address
}

/**
 * Where connections come from (PROTOCOL.md § 21): every TCP connection to the simulator's servers is
 * recorded, and while an allow list is set, a connection from any other address is destroyed at
 * once. A test proves with it that a linked device's traffic went through a proxy (which connects
 * from its own address) and never directly.
 */
export class Peers {
  #allowed: Set<string> | undefined
  readonly #connections: PeerConnection[] = []
  readonly #bySocket = new WeakMap<Socket, PeerConnection>()

  constructor (allowed?: string[]) {
    this.allow(allowed)
  }

  /** Only these addresses may connect from now on (connections already open stay); undefined: any address. */
  allow (addresses: string[] | undefined): void {
    this.#allowed = addresses ? new Set(addresses.map(plainAddress)) : undefined
  }

  get allowed (): string[] | undefined {
    return this.#allowed ? [...this.#allowed] : undefined
  }

  /** Every connection so far, accepted and refused, oldest first. */
  list (): PeerConnection[] {
    return this.#connections.map((connection) => ({ ...connection }))
  }

  /** The record of an accepted socket (the WebSocket server names the device on it once it logs in). */
  of (socket: Socket): PeerConnection | undefined {
    return this.#bySocket.get(socket)
  }

  /**
   * Listens on `host:port` for `server`, which must not listen itself: a plain TCP server in front
   * of it decides on each connection before the HTTP server (or TLS) sees it, so a refused client
   * gets no TLS handshake and no HTTP answer, only a closed socket.
   */
  async listen (kind: PeerConnection['server'], server: EventEmitter, host: string, port: number): Promise<GatedListener> {
    const open = new Set<Socket>()
    const front: TcpServer = createServer((socket) => {
      const address = plainAddress(socket.remoteAddress)
      const refused = this.#allowed !== undefined && !this.#allowed.has(address)
      const record: PeerConnection = { server: kind, address, refused, at: Date.now() }
      this.#connections.push(record)
      if (refused) {
        socket.destroy()
        return
      }
      this.#bySocket.set(socket, record)
      open.add(socket)
      socket.once('close', () => open.delete(socket))
      server.emit('connection', socket)
    })
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject)
      front.listen(port, host, () => resolve())
    })
    return {
      port: (front.address() as { port: number }).port,
      close: async () => {
        for (const socket of open) socket.destroy()
        await new Promise<void>((resolve) => front.close(() => resolve()))
      }
    }
  }
}
