import { randomBytes } from 'node:crypto'
import { WebSocketServer, type WebSocket } from 'ws'
import {
  Curve, decodeBinaryNode, encodeBinaryNode, hmacSign, proto, S_WHATSAPP_NET, WA_ADV_ACCOUNT_SIG_PREFIX, type BinaryNode
} from '@whiskeysockets/baileys'
import { FrameReader, frame, NoiseServer, SimulatorIdentity } from './noise.ts'

/** WhatsApp offers this many QR references before the client gives up with 408. */
const DEFAULT_QR_REFS = 6
/** Answered to the pre-key count query: above Baileys' minimum (5), so a fresh login uploads none. */
const PREKEYS_ON_SERVER = 50
/** Time for the client to answer pair-success before the server asks it to restart. */
const RESTART_AFTER_PAIRING_MS = 200

export interface SimulatorOptions {
  host?: string
  port?: number
  qrRefs?: number
  identity?: SimulatorIdentity
}

export interface SimulatorLogEntry {
  at: number
  kind: 'handshake' | 'pair-device' | 'pair-success' | 'login' | 'replaced' | 'logged-out' | 'recv' | 'closed' | 'error'
  detail: string
}

/**
 * A local WhatsApp Web server that real Baileys (7.0.0-rc14) connects to. This first milestone
 * completes the Noise handshake and, for an unlinked device, offers QR references (`pair-device`).
 * Linking, login, messages and the control API come next (see the closing note).
 */
export class WhatsAppSimulator {
  readonly identity: SimulatorIdentity
  readonly log: SimulatorLogEntry[] = []
  readonly #options: SimulatorOptions
  #server: WebSocketServer | undefined
  /** One live connection per linked device (`<user>:<device>`), as WhatsApp enforces. */
  readonly #devices = new Map<string, { socket: WebSocket, sendNode: (node: BinaryNode) => void }>()
  /** Unlinked connections waiting for a scan, by the QR references they were offered. */
  readonly #waitingForScan = new Map<string, { socket: WebSocket, sendNode: (node: BinaryNode) => void }>()
  /** Each simulated phone's account key (it signs the devices it links) and its device counter. */
  readonly #phones = new Map<string, { account: { private: Buffer, public: Buffer }, devices: number }>()

  constructor (options: SimulatorOptions = {}) {
    this.#options = options
    this.identity = options.identity ?? new SimulatorIdentity()
  }

  async start (): Promise<{ url: string, port: number }> {
    const server = new WebSocketServer({ host: this.#options.host ?? '127.0.0.1', port: this.#options.port ?? 0 })
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve)
      server.once('error', reject)
    })
    server.on('connection', (socket) => this.#serve(socket))
    this.#server = server
    const { port } = server.address() as { port: number }
    return { url: `ws://127.0.0.1:${port}/ws/chat`, port }
  }

  async stop (): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (!server) return
    for (const client of server.clients) client.terminate()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  #record (kind: SimulatorLogEntry['kind'], detail: string): void {
    this.log.push({ at: Date.now(), kind, detail })
  }

  #serve (socket: WebSocket): void {
    const noise = new NoiseServer(this.identity)
    const reader = new FrameReader()
    let introSeen = false
    let helloAnswered = false
    const sendNode = (node: BinaryNode) => socket.send(frame(noise.encryptFrame(encodeBinaryNode(node))))

    socket.on('message', (data: Buffer) => {
      void (async () => {
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
            const { payload } = noise.clientFinish(message.clientFinish ?? {})
            this.#record('handshake', payload.devicePairingData ? 'unlinked device' : `login ${payload.username ?? ''}:${payload.device ?? 0}`)
            if (payload.devicePairingData) this.#offerQr(socket, sendNode)
            else this.#login(socket, sendNode, `${payload.username ?? ''}:${payload.device ?? 0}`)
            continue
          }
          const node = await decodeBinaryNode(noise.decryptFrame(incoming))
          this.#record('recv', `${node.tag} ${JSON.stringify(node.attrs)}`)
          if (node.tag === 'iq') this.#answerIq(node, sendNode)
        }
      })().catch((err: unknown) => {
        this.#record('error', (err as Error).message)
        socket.close()
      })
    })
    socket.on('close', () => {
      this.#record('closed', '')
      for (const [device, live] of this.#devices) if (live.socket === socket) this.#devices.delete(device)
    })
  }

  /** A linked device logs in: a previous connection of the same device is replaced (440 on the client). */
  #login (socket: WebSocket, sendNode: (node: BinaryNode) => void, device: string): void {
    const previous = this.#devices.get(device)
    if (previous && previous.socket !== socket) {
      previous.sendNode({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] })
      previous.socket.close()
      this.#record('replaced', device)
    }
    this.#devices.set(device, { socket, sendNode })
    const [user] = device.split(':')
    sendNode({ tag: 'success', attrs: { t: String(Math.floor(Date.now() / 1000)), lid: `${user}@lid` } })
    sendNode({ tag: 'ib', attrs: {}, content: [{ tag: 'offline', attrs: { count: '0' } }] })
    this.#record('login', device)
  }

  /** Answers the queries a client needs answered to go `open`, and any other iq with an empty result. */
  #answerIq (node: BinaryNode, sendNode: (node: BinaryNode) => void): void {
    if (node.attrs.type !== 'get' && node.attrs.type !== 'set') return
    const child = Array.isArray(node.content) ? node.content[0] : undefined
    const result: BinaryNode = { tag: 'iq', attrs: { from: S_WHATSAPP_NET, type: 'result', id: node.attrs.id } }
    if (node.attrs.xmlns === 'encrypt' && child?.tag === 'count') result.content = [{ tag: 'count', attrs: { value: String(PREKEYS_ON_SERVER) } }]
    if (node.attrs.xmlns === 'encrypt' && child?.tag === 'digest') result.content = [{ tag: 'digest', attrs: {} }]
    sendNode(result)
  }

  /**
   * The phone `phoneNumber` scans `qr`: it signs a device identity for the client's identity key
   * with its account key, authenticated with the QR's ADV secret, then asks the client to restart (515).
   */
  scan (qr: string, phoneNumber: string): boolean {
    const [ref, , identityKeyB64, advSecretB64] = qr.replace(/^https:\/\/wa\.me\/settings\/linked_devices#/, '').split(',')
    const waiting = this.#waitingForScan.get(ref)
    if (!waiting || !identityKeyB64 || !advSecretB64) return false
    for (const [key, value] of this.#waitingForScan) if (value.socket === waiting.socket) this.#waitingForScan.delete(key)
    const phone = this.#phones.get(phoneNumber) ?? { account: Curve.generateKeyPair() as { private: Buffer, public: Buffer }, devices: 0 }
    phone.devices++
    this.#phones.set(phoneNumber, phone)
    const deviceDetails = proto.ADVDeviceIdentity.encode({ rawId: randomBytes(4).readUInt32BE(0), timestamp: Math.floor(Date.now() / 1000), keyIndex: phone.devices }).finish()
    const accountSignature = Curve.sign(phone.account.private, Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, deviceDetails, Buffer.from(identityKeyB64, 'base64')]))
    const details = proto.ADVSignedDeviceIdentity.encode({ details: deviceDetails, accountSignatureKey: phone.account.public, accountSignature }).finish()
    const hmac = hmacSign(details, Buffer.from(advSecretB64, 'base64'))
    const device = phone.devices + 1
    waiting.sendNode({
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: randomBytes(8).toString('hex') },
      content: [{
        tag: 'pair-success',
        attrs: {},
        content: [
          { tag: 'device-identity', attrs: {}, content: proto.ADVSignedDeviceIdentityHMAC.encode({ details, hmac }).finish() },
          { tag: 'platform', attrs: { name: 'smba' } },
          { tag: 'device', attrs: { jid: `${phoneNumber}:${device}@s.whatsapp.net`, lid: `${phoneNumber}:${device}@lid` } }
        ]
      }]
    })
    this.#record('pair-success', `${phoneNumber}:${device}`)
    // Linked: the server asks for a new connection, on which the device logs in.
    setTimeout(() => {
      waiting.sendNode({ tag: 'stream:error', attrs: { code: '515' } })
      waiting.socket.close()
    }, RESTART_AFTER_PAIRING_MS)
    return true
  }

  /** The phone removes the linked device (`<user>:<device>`): its connection ends with 401. */
  logout (device: string): boolean {
    const live = this.#devices.get(device)
    if (!live) return false
    this.#devices.delete(device)
    live.sendNode({ tag: 'failure', attrs: { reason: '401' } })
    live.socket.close()
    this.#record('logged-out', device)
    return true
  }

  /** Another client logged in with this device elsewhere: the live one is replaced (440). */
  replace (device: string): boolean {
    const live = this.#devices.get(device)
    if (!live) return false
    this.#devices.delete(device)
    live.sendNode({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] })
    live.socket.close()
    this.#record('replaced', device)
    return true
  }

  /** Breaks the device's connection: with a stream error code (e.g. 515, 503), or by dropping the socket. */
  drop (device: string, code?: number): boolean {
    const live = this.#devices.get(device)
    if (!live) return false
    this.#devices.delete(device)
    if (code === undefined) live.socket.terminate()
    else {
      live.sendNode({ tag: 'stream:error', attrs: { code: String(code) } })
      live.socket.close()
    }
    this.#record('closed', `${device} dropped${code === undefined ? '' : ` with ${code}`}`)
    return true
  }

  /** QR references offered to unlinked connections and not yet scanned. */
  waitingForScan (): number {
    return new Set([...this.#waitingForScan.values()].map((entry) => entry.socket)).size
  }

  /** Linked devices with a live connection. */
  liveDevices (): string[] {
    return [...this.#devices.keys()]
  }

  #offerQr (socket: WebSocket, sendNode: (node: BinaryNode) => void): void {
    const refs = Array.from({ length: this.#options.qrRefs ?? DEFAULT_QR_REFS }, () => `2@${randomBytes(32).toString('base64')}`)
    for (const ref of refs) this.#waitingForScan.set(ref, { socket, sendNode })
    sendNode({
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: randomBytes(8).toString('hex'), xmlns: 'md' },
      content: [{ tag: 'pair-device', attrs: {}, content: refs.map((ref) => ({ tag: 'ref', attrs: {}, content: Buffer.from(ref) })) }]
    })
    this.#record('pair-device', refs[0])
  }
}
