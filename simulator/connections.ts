import type { WebSocket } from 'ws'
import { decodeBinaryNode, encodeBinaryNode, proto, type BinaryNode } from '@whiskeysockets/baileys'
import { FrameReader, frame, NoiseServer, type SimulatorIdentity } from './noise.ts'
import { deviceName, PHONE_DEVICE, type DeviceAddress, type Directory } from './accounts.ts'
import type { Recorder } from './log.ts'
import { unixNow } from './stanzas.ts'

/** One WebSocket client; `device` is set once a linked device has logged in on it. */
export interface Connection {
  socket: WebSocket
  send: (node: BinaryNode) => void
  device?: DeviceAddress
}

/** What a client does on its connection, for the server to act on. */
export interface ConnectionEvents {
  /** The Noise handshake is done: the client's payload says whether it logs in or asks to be linked. */
  handshake: (connection: Connection, payload: proto.ClientPayload) => void
  /** A stanza from the client. When handling it returns a promise, the next stanza waits for it. */
  stanza: (connection: Connection, node: BinaryNode) => Promise<void> | undefined
  /** Handling the client's frames failed: the connection is closed. */
  failed: (connection: Connection, err: Error) => void
  closed: (connection: Connection) => void
}

/** Serves one WebSocket client: WhatsApp's Noise handshake, then binary nodes both ways. */
export function accept (socket: WebSocket, identity: SimulatorIdentity, events: ConnectionEvents): Connection {
  const noise = new NoiseServer(identity)
  const reader = new FrameReader()
  const connection: Connection = { socket, send: (node) => socket.send(frame(noise.encryptFrame(encodeBinaryNode(node)))) }
  let introSeen = false
  let helloAnswered = false
  // Frames are handled one at a time, in order: Signal sessions depend on it.
  let queue = Promise.resolve()

  const handle = async (data: Buffer) => {
    let bytes = data
    if (!introSeen) {
      bytes = reader.stripIntro(bytes)
      introSeen = true
    }
    for (const incoming of reader.push(bytes)) {
      if (!noise.established) {
        const message = proto.HandshakeMessage.decode(incoming)
        if (!helloAnswered) {
          if (!message.clientHello?.ephemeral) throw new Error('expected ClientHello')
          socket.send(frame(noise.serverHello(message.clientHello.ephemeral)))
          helloAnswered = true
          continue
        }
        events.handshake(connection, noise.clientFinish(message.clientFinish ?? {}).payload)
        continue
      }
      const handling = events.stanza(connection, await decodeBinaryNode(noise.decryptFrame(incoming)))
      if (handling) await handling
    }
  }
  socket.on('message', (data: Buffer) => {
    queue = queue.then(() => handle(data)).catch((err: unknown) => {
      events.failed(connection, err as Error)
      socket.close()
    })
  })
  socket.on('close', () => events.closed(connection))
  return connection
}

/** The live connection of each linked device (by `<user>:<device>`): only one per device, as WhatsApp enforces. */
export class LinkedDevices {
  readonly #live = new Map<string, Connection>()
  readonly #directory: Directory
  readonly #record: Recorder

  constructor (directory: Directory, record: Recorder) {
    this.#directory = directory
    this.#record = record
  }

  /**
   * A linked device logs in: a previous connection of the same device is replaced (440 on the
   * client). False when the login is refused.
   */
  login (connection: Connection, device: DeviceAddress): boolean {
    const name = deviceName(device)
    if (device.device === PHONE_DEVICE) {
      // Creds that asked for a pairing code but never finished linking log in as the phone itself.
      this.#loggedOut(connection, `${name}: not a linked device`)
      return false
    }
    const previous = this.#live.get(name)
    if (previous && previous !== connection) this.#replaced(previous, name)
    connection.device = device
    this.#live.set(name, connection)
    const account = this.#directory.account(device.user)
    account.knownDevices.add(device.device)
    connection.send({ tag: 'success', attrs: { t: unixNow(), lid: `${account.lid}:${device.device}@lid` } })
    this.#record('login', name)
    return true
  }

  /** The device's live connection, if it has one. */
  get (device: string): Connection | undefined {
    return this.#live.get(device)
  }

  /** The live connections of the account's linked devices. */
  of (user: string): Connection[] {
    return [...this.#live.values()].filter((connection) => connection.device?.user === user)
  }

  names (): string[] {
    return [...this.#live.keys()]
  }

  /** The phone removes the linked device: the account forgets it, and its connection ends with 401. */
  logout (device: string): boolean {
    const live = this.#live.get(device)
    if (!live) return false
    this.#live.delete(device)
    const [user, number] = device.split(':')
    this.#directory.account(user).knownDevices.delete(Number(number))
    this.#loggedOut(live, device)
    return true
  }

  /** Another client logged in with this device elsewhere: the live one is replaced (440). */
  replace (device: string): boolean {
    const live = this.#live.get(device)
    if (!live) return false
    this.#live.delete(device)
    this.#replaced(live, device)
    return true
  }

  /** Breaks the device's connection: with a stream error code (e.g. 515, 503), or by dropping the socket. */
  drop (device: string, code?: number): boolean {
    const live = this.#live.get(device)
    if (!live) return false
    this.#live.delete(device)
    if (code === undefined) live.socket.terminate()
    else {
      live.send({ tag: 'stream:error', attrs: { code: String(code) } })
      live.socket.close()
    }
    this.#record('closed', `${device} dropped${code === undefined ? '' : ` with ${code}`}`)
    return true
  }

  /** The connection closed: a device it was live for is offline now. */
  forget (connection: Connection): void {
    for (const [device, live] of this.#live) if (live === connection) this.#live.delete(device)
  }

  #replaced (connection: Connection, device: string): void {
    connection.send({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] })
    connection.socket.close()
    this.#record('replaced', device)
  }

  #loggedOut (connection: Connection, detail: string): void {
    connection.send({ tag: 'failure', attrs: { reason: '401' } })
    connection.socket.close()
    this.#record('logged-out', detail)
  }
}
