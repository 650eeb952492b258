import { randomBytes } from 'node:crypto'
import { WebSocketServer, type WebSocket } from 'ws'
import { decodeBinaryNode, encodeBinaryNode, proto, S_WHATSAPP_NET, type BinaryNode } from '@whiskeysockets/baileys'
import { FrameReader, frame, NoiseServer, SimulatorIdentity } from './noise.ts'

/** WhatsApp offers this many QR references before the client gives up with 408. */
const DEFAULT_QR_REFS = 6

export interface SimulatorOptions {
  host?: string
  port?: number
  qrRefs?: number
  identity?: SimulatorIdentity
}

export interface SimulatorLogEntry {
  at: number
  kind: 'handshake' | 'pair-device' | 'recv' | 'closed' | 'error'
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
            this.#record('handshake', payload.devicePairingData ? 'unlinked device' : `login ${payload.username ?? ''}.${payload.device ?? 0}`)
            if (payload.devicePairingData) this.#offerQr(sendNode)
            continue
          }
          const node = await decodeBinaryNode(noise.decryptFrame(incoming))
          this.#record('recv', `${node.tag} ${JSON.stringify(node.attrs)}`)
        }
      })().catch((err: unknown) => {
        this.#record('error', (err as Error).message)
        socket.close()
      })
    })
    socket.on('close', () => this.#record('closed', ''))
  }

  #offerQr (sendNode: (node: BinaryNode) => void): void {
    const refs = Array.from({ length: this.#options.qrRefs ?? DEFAULT_QR_REFS }, () => `2@${randomBytes(32).toString('base64')}`)
    sendNode({
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: randomBytes(8).toString('hex'), xmlns: 'md' },
      content: [{ tag: 'pair-device', attrs: {}, content: refs.map((ref) => ({ tag: 'ref', attrs: {}, content: Buffer.from(ref) })) }]
    })
    this.#record('pair-device', refs[0])
  }
}
