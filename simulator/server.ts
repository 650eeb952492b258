import { randomBytes } from 'node:crypto'
import { WebSocketServer, type WebSocket } from 'ws'
import {
  Curve, decodeBinaryNode, encodeBinaryNode, getBinaryNodeChild, getBinaryNodeChildBuffer, getBinaryNodeChildren, hmacSign, jidDecode, proto,
  S_WHATSAPP_NET, unpadRandomMax16, WA_ADV_ACCOUNT_SIG_PREFIX, writeRandomPadMax16, type BinaryNode
} from '@whiskeysockets/baileys'
import { FrameReader, frame, NoiseServer, SimulatorIdentity } from './noise.ts'
import { Directory, type Account, type ReceivedMessage } from './accounts.ts'
import type { CiphertextType } from './signal.ts'
import { PrimaryPairing } from './pairing-code.ts'

/** WhatsApp offers this many QR references before the client gives up with 408. */
const DEFAULT_QR_REFS = 6
/** Answered to the pre-key count query: above Baileys' minimum (5), so a fresh login uploads none. */
const PREKEYS_ON_SERVER = 50
/** Time for the client to answer pair-success before the server asks it to restart. */
const RESTART_AFTER_PAIRING_MS = 200
/** The phone (primary device) of every account. */
const PHONE_DEVICE = 0
/** The key index WhatsApp lists for a linked (non-zero) device; Baileys skips devices without one. */
const LINKED_KEY_INDEX = '1'
/**
 * A contact's phone reports delivery this long after the server took the message, as a real one
 * does: a receipt in the same instant as the send would be folded by Baileys into the sent message.
 */
const DELIVERY_RECEIPT_DELAY_MS = 50
/** WhatsApp's default privacy settings; read receipts on means Baileys sends `read`, not `read-self`. */
const DEFAULT_PRIVACY: BinaryNode[] = [
  ['readreceipts', 'all'], ['last', 'all'], ['online', 'all'], ['profile', 'all'], ['status', 'contacts'], ['groupadd', 'all']
].map(([name, value]) => ({ tag: 'category', attrs: { name, value } }))
/** How long entering a pairing code waits for the companion to finish the exchange. */
const PAIRING_CODE_EXCHANGE_MS = 10_000

export interface SimulatorOptions {
  host?: string
  port?: number
  qrRefs?: number
  identity?: SimulatorIdentity
  /** Phone numbers that are not on WhatsApp (every other number is). */
  notOnWhatsApp?: string[]
}

export interface SimulatorLogEntry {
  at: number
  kind: 'handshake' | 'pair-device' | 'pair-success' | 'login' | 'replaced' | 'logged-out' | 'recv' | 'message' | 'inbound' | 'closed' | 'error'
  detail: string
}

/** One WebSocket client; `device` is set once a linked device has logged in on it. */
interface Connection {
  socket: WebSocket
  send: (node: BinaryNode) => void
  device?: { user: string, device: number }
  /** Inbound messages sent on this connection and not yet acknowledged by the device. */
  unacked: Map<string, QueuedMessage>
  /** Receipts sent on this connection and not yet acknowledged (by `receipt:<id>:<type>`). */
  unackedReceipts: Map<string, BinaryNode>
}

export interface InboundOptions {
  /** The contact's phone number (digits). */
  from: string
  /** The account (phone number) whose linked devices receive it. */
  to: string
  text: string
  id?: string
  pushName?: string
}

/** A companion that asked to be linked by code (`companion_hello`), until the phone's user enters it. */
interface CodeRequest {
  connection: Connection
  phone: string
  wrappedCompanionEphemeral: Buffer
  pairing?: PrimaryPairing
  settle?: (outcome: PairingCodeOutcome) => void
}

/** An inbound message waiting for an offline device. */
type QueuedMessage = InboundOptions & { id: string, at: number }
/** What WhatsApp keeps for an offline device: contacts' messages, and receipts for what it sent. */
type Kept = { message: QueuedMessage } | { node: BinaryNode }

export type PairingCodeOutcome =
  | { linked: true, device: string }
  | { linked: false, reason: 'no-request' | 'wrong-code' | 'timeout' }

const receiptKey = (id: string | undefined, type: string | undefined) => `${id ?? ''}:${type ?? 'delivery'}`
const unixNow = () => String(Math.floor(Date.now() / 1000))
const deviceName = (device: { user: string, device: number }) => `${device.user}:${device.device}`
const userJid = (user: string) => `${user}@s.whatsapp.net`

/**
 * A local WhatsApp Web server that real Baileys (7.0.0-rc14) links to, logs in to, and sends and
 * receives messages through. Contacts are simulated phones with Signal identities: what a linked
 * device sends them is decrypted and recorded, and they can write back. See PROTOCOL.md.
 */
export class WhatsAppSimulator {
  readonly identity: SimulatorIdentity
  readonly log: SimulatorLogEntry[] = []
  readonly directory: Directory
  readonly #options: SimulatorOptions
  #server: WebSocketServer | undefined
  /** One live connection per linked device (`<user>:<device>`), as WhatsApp enforces. */
  readonly #devices = new Map<string, Connection>()
  /** Unlinked connections waiting for a scan, by the QR references they were offered. */
  readonly #waitingForScan = new Map<string, Connection>()
  /** Messages kept for linked devices that were offline, by device (`<user>:<device>`). */
  readonly #offline = new Map<string, Kept[]>()
  /** Pairing-code requests by the reference the server gave them. */
  readonly #codeRequests = new Map<string, CodeRequest>()

  constructor (options: SimulatorOptions = {}) {
    this.#options = options
    this.identity = options.identity ?? new SimulatorIdentity()
    this.directory = new Directory(options.notOnWhatsApp)
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
    const connection: Connection = { socket, send: (node) => socket.send(frame(noise.encryptFrame(encodeBinaryNode(node)))), unacked: new Map(), unackedReceipts: new Map() }
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
          const { payload } = noise.clientFinish(message.clientFinish ?? {})
          this.#record('handshake', payload.devicePairingData ? 'unlinked device' : `login ${payload.username ?? ''}:${payload.device ?? 0}`)
          if (payload.devicePairingData) this.#offerQr(connection)
          else this.#login(connection, { user: String(payload.username ?? ''), device: payload.device ?? 0 })
          continue
        }
        const node = await decodeBinaryNode(noise.decryptFrame(incoming))
        this.#record('recv', `${node.tag} ${JSON.stringify(node.attrs)}`)
        const firstChild = Array.isArray(node.content) ? node.content[0] : undefined
        if (node.tag === 'iq' && firstChild?.tag === 'link_code_companion_reg') this.#codeExchange(connection, node, firstChild)
        else if (node.tag === 'iq') this.#answerIq(connection, node)
        else if (node.tag === 'message') await this.#relay(connection, node)
        else if (node.tag === 'receipt') this.#receiptFromDevice(connection, node)
        else if (node.tag === 'ack' && node.attrs.class === 'message') connection.unacked.delete(node.attrs.id)
        else if (node.tag === 'ack' && node.attrs.class === 'receipt') connection.unackedReceipts.delete(receiptKey(node.attrs.id, node.attrs.type))
      }
    }
    socket.on('message', (data: Buffer) => {
      queue = queue.then(() => handle(data)).catch((err: unknown) => {
        this.#record('error', (err as Error).message)
        socket.close()
      })
    })
    socket.on('close', () => {
      this.#record('closed', connection.device ? deviceName(connection.device) : '')
      // WhatsApp forgets a message only once the device acknowledged it: what was not, comes again at the next login.
      if (connection.device) {
        for (const message of connection.unacked.values()) this.#keep(deviceName(connection.device), { message })
        for (const node of connection.unackedReceipts.values()) this.#keep(deviceName(connection.device), { node })
      }
      for (const [device, live] of this.#devices) if (live === connection) this.#devices.delete(device)
      this.#stopWaiting(connection)
      for (const [ref, request] of this.#codeRequests) if (request.connection === connection) this.#codeRequests.delete(ref)
    })
  }

  /** A linked device logs in: a previous connection of the same device is replaced (440 on the client). */
  #login (connection: Connection, device: { user: string, device: number }): void {
    const name = deviceName(device)
    if (device.device === PHONE_DEVICE) {
      // Creds that asked for a pairing code but never finished linking log in as the phone itself.
      connection.send({ tag: 'failure', attrs: { reason: '401' } })
      connection.socket.close()
      this.#record('logged-out', `${name}: not a linked device`)
      return
    }
    const previous = this.#devices.get(name)
    if (previous && previous !== connection) {
      previous.send({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] })
      previous.socket.close()
      this.#record('replaced', name)
    }
    connection.device = device
    this.#devices.set(name, connection)
    const account = this.directory.account(device.user)
    account.knownDevices.add(device.device)
    connection.send({ tag: 'success', attrs: { t: unixNow(), lid: `${account.lid}:${device.device}@lid` } })
    this.#record('login', name)
    const waiting = this.#offline.get(name) ?? []
    this.#offline.delete(name)
    void (async () => {
      for (const kept of waiting) {
        if ('message' in kept) await this.#sendInbound(connection, kept.message, true)
        else this.#sendReceipt(connection, { ...kept.node, attrs: { ...kept.node.attrs, offline: '1' } })
      }
      connection.send({ tag: 'ib', attrs: {}, content: [{ tag: 'offline', attrs: { count: String(waiting.length) } }] })
      if (waiting.length > 0) this.#record('inbound', `${waiting.length} kept messages handed to ${name}`)
    })().catch((err: unknown) => this.#record('error', `offline messages for ${name}: ${(err as Error).message}`))
  }

  /** Answers the queries a client needs answered (login, device lists, pre-key bundles), and any other iq with an empty result. */
  #answerIq (connection: Connection, node: BinaryNode): void {
    if (node.attrs.type !== 'get' && node.attrs.type !== 'set') return
    const child = Array.isArray(node.content) ? node.content[0] : undefined
    const result: BinaryNode = { tag: 'iq', attrs: { from: S_WHATSAPP_NET, type: 'result', id: node.attrs.id } }
    if (node.attrs.xmlns === 'encrypt' && child?.tag === 'count') result.content = [{ tag: 'count', attrs: { value: String(PREKEYS_ON_SERVER) } }]
    if (node.attrs.xmlns === 'encrypt' && child?.tag === 'digest') result.content = [{ tag: 'digest', attrs: {} }]
    if (node.attrs.xmlns === 'encrypt' && child?.tag === 'key') result.content = [{ tag: 'list', attrs: {}, content: this.#preKeyBundles(child) }]
    if (node.attrs.xmlns === 'usync' && child?.tag === 'usync') result.content = [this.#usync(connection, child)]
    if (node.attrs.xmlns === 'privacy' && child?.tag === 'privacy') result.content = [{ tag: 'privacy', attrs: {}, content: DEFAULT_PRIVACY }]
    connection.send(result)
  }

  /** Devices, LIDs and registration of the users asked about (Baileys runs this before every send). */
  #usync (connection: Connection, usync: BinaryNode): BinaryNode {
    const protocols = new Set((getBinaryNodeChild(usync, 'query')?.content as BinaryNode[] | undefined ?? []).map((protocol) => protocol.tag))
    const users = (getBinaryNodeChild(usync, 'list')?.content as BinaryNode[] | undefined ?? []).filter((user) => user.tag === 'user')
    const answers = users.map((user): BinaryNode => {
      const byPhone = getBinaryNodeChild(user, 'contact')?.content
      const jid = user.attrs.jid ?? (byPhone ? userJid(Buffer.from(byPhone as Uint8Array).toString().replace(/\D/g, '')) : '')
      const resolved = this.directory.resolve(jid)
      const content: BinaryNode[] = []
      if (resolved && protocols.has('contact')) content.push({ tag: 'contact', attrs: { type: resolved.account.registered ? 'in' : 'out' } })
      if (resolved && protocols.has('lid') && resolved.account.registered && jidDecode(jid)?.server !== 'lid') content.push({ tag: 'lid', attrs: { val: `${resolved.account.lid}@lid` } })
      if (resolved && protocols.has('devices')) {
        const devices: BinaryNode[] = resolved.account.registered ? [{ tag: 'device', attrs: { id: String(PHONE_DEVICE) } }] : []
        // The asking device itself, as WhatsApp lists it; other linked devices of the account are not simulated as recipients.
        if (connection.device?.user === resolved.account.phone) devices.push({ tag: 'device', attrs: { id: String(connection.device.device), 'key-index': LINKED_KEY_INDEX } })
        content.push({ tag: 'devices', attrs: {}, content: [{ tag: 'device-list', attrs: {}, content: devices }] })
      }
      return { tag: 'user', attrs: { jid }, content }
    })
    return { tag: 'usync', attrs: { ...usync.attrs }, content: [{ tag: 'result', attrs: {} }, { tag: 'list', attrs: {}, content: answers }] }
  }

  /** One pre-key bundle per phone asked for; devices the simulator does not host are left out. */
  #preKeyBundles (key: BinaryNode): BinaryNode[] {
    return getBinaryNodeChildren(key, 'user').flatMap((user) => {
      const resolved = this.directory.resolve(user.attrs.jid ?? '')
      return resolved?.device === PHONE_DEVICE && resolved.account.registered ? [resolved.account.phoneDevice.bundle(user.attrs.jid)] : []
    })
  }

  /**
   * A message from a linked device: each `<to>` addressed to a phone is decrypted with that phone's
   * Signal identity and recorded. The server acknowledges it, and each contact reports delivery.
   */
  async #relay (connection: Connection, node: BinaryNode): Promise<void> {
    const sender = connection.device
    if (!sender) return
    const id = node.attrs.id
    const delivered = new Set<string>()
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc')
      const resolved = this.directory.resolve(to.attrs.jid ?? '')
      if (!enc || !resolved || resolved.device !== PHONE_DEVICE || !(enc.content instanceof Uint8Array)) continue
      try {
        const padded = await resolved.account.phoneDevice.decrypt(sender, enc.attrs.type as CiphertextType, Buffer.from(enc.content))
        const message = proto.Message.decode(unpadRandomMax16(padded))
        // The sender's own phone gets a copy of what it sent (a device-sent message); only contacts record it.
        if (resolved.account.phone === sender.user) continue
        resolved.account.received.push(this.#describe(id, deviceName(sender), message))
        delivered.add(resolved.account.phone)
        this.#record('message', `${deviceName(sender)} → ${resolved.account.phone} ${id}`)
      } catch (err) {
        this.#record('error', `cannot decrypt ${id} for ${to.attrs.jid}: ${(err as Error).message}`)
      }
    }
    connection.send({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: unixNow() } })
    if (delivered.size === 0) return
    setTimeout(() => {
      for (const phone of delivered) {
        const receipt: BinaryNode = { tag: 'receipt', attrs: { id, from: userJid(phone), t: unixNow() } }
        // The sending device went offline meanwhile (a handoff): it gets the receipt when it is back.
        const live = this.#devices.get(deviceName(sender))
        if (live) this.#sendReceipt(live, receipt)
        else this.#keep(deviceName(sender), { node: receipt })
      }
    }, DELIVERY_RECEIPT_DELAY_MS).unref()
  }

  #describe (id: string, from: string, message: proto.IMessage): ReceivedMessage {
    const at = Date.now()
    const text = message.conversation ?? message.extendedTextMessage?.text
    if (typeof text === 'string') return { id, from, at, kind: 'text', text }
    const reaction = message.reactionMessage
    if (reaction) return { id, from, at, kind: 'reaction', reaction: { messageId: reaction.key?.id ?? '', emoji: reaction.text ?? '', fromMe: Boolean(reaction.key?.fromMe) } }
    return { id, from, at, kind: 'other' }
  }

  /** A linked device reports that it got (or read) a contact's message. */
  #receiptFromDevice (connection: Connection, node: BinaryNode): void {
    const resolved = this.directory.resolve(node.attrs.to ?? '')
    if (!resolved || !connection.device) return
    const ids = [node.attrs.id, ...getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'item').map((item) => item.attrs.id)]
    // A client that is not marked online acknowledges delivery as 'inactive'.
    const type = node.attrs.type === undefined || node.attrs.type === 'inactive' ? 'delivered' : node.attrs.type === 'read' ? 'read' : 'other'
    for (const messageId of ids) {
      if (messageId) resolved.account.receipts.push({ messageId, from: deviceName(connection.device), type, at: Date.now() })
    }
  }

  /**
   * The contact `from` writes to the account `to`: every live linked device of `to` gets the
   * message, encrypted when the device has opened a Signal session with the contact, otherwise as
   * plaintext. Returns the message id and how many devices it reached.
   */
  async deliver (options: InboundOptions): Promise<{ id: string, devices: number, encrypted: number, queued: number }> {
    const id = options.id ?? randomBytes(8).toString('hex').toUpperCase()
    const message: QueuedMessage = { ...options, id, at: Math.floor(Date.now() / 1000) }
    let devices = 0
    let encrypted = 0
    let queued = 0
    const account = this.directory.account(options.to)
    for (const device of account.knownDevices) {
      const connection = this.#devices.get(deviceName({ user: options.to, device }))
      if (connection?.device) {
        if (await this.#sendInbound(connection, message)) encrypted++
        devices++
      } else {
        // WhatsApp keeps messages for a linked device that is offline and hands them over when it logs in.
        this.#keep(deviceName({ user: options.to, device }), { message })
        queued++
      }
    }
    this.#record('inbound', `${options.from} → ${options.to} ${id} (${devices} devices, ${queued} queued)`)
    return { id, devices, encrypted, queued }
  }

  /** A receipt, kept until the device acknowledges it (like a message). */
  #sendReceipt (connection: Connection, receipt: BinaryNode): void {
    connection.unackedReceipts.set(receiptKey(receipt.attrs.id, receipt.attrs.type), receipt)
    connection.send(receipt)
  }

  #keep (device: string, kept: Kept): void {
    this.#offline.set(device, [...(this.#offline.get(device) ?? []), kept])
  }

  /** One inbound message to one live device; true when it went Signal-encrypted. */
  async #sendInbound (connection: Connection, message: QueuedMessage, offline = false): Promise<boolean> {
    connection.unacked.set(message.id, message)
    const contact = this.directory.account(message.from)
    const device = connection.device!
    const bytes = Buffer.from(proto.Message.encode({ conversation: message.text }).finish())
    let payload: BinaryNode
    let encrypted = false
    if (contact.phoneDevice.hasSession(device)) {
      const { type, ciphertext } = await contact.phoneDevice.encrypt(device, writeRandomPadMax16(bytes))
      payload = { tag: 'enc', attrs: { v: '2', type }, content: ciphertext }
      encrypted = true
    } else {
      payload = { tag: 'plaintext', attrs: {}, content: bytes }
    }
    connection.send({
      tag: 'message',
      attrs: {
        from: userJid(contact.phone), id: message.id, t: String(message.at), type: 'text',
        ...(message.pushName ? { notify: message.pushName } : {}),
        ...(offline ? { offline: '1' } : {})
      },
      content: [payload]
    })
    return encrypted
  }

  /** The contact `phone` reads messages it received from `to`'s devices: they get a read receipt. */
  read (phone: string, to: string, messageIds: string[]): number {
    let devices = 0
    for (const connection of this.#devices.values()) {
      if (connection.device?.user !== to) continue
      for (const id of messageIds) this.#sendReceipt(connection, { tag: 'receipt', attrs: { id, from: userJid(phone), type: 'read', t: unixNow() } })
      devices++
    }
    return devices
  }

  /** What the contact `phone` received, in order. */
  received (phone: string): ReceivedMessage[] {
    return [...this.directory.account(phone).received]
  }

  /** The account behind a phone number (created on first use). */
  account (phone: string): Account {
    return this.directory.account(phone)
  }

  /**
   * The phone `phoneNumber` scans `qr`: it signs a device identity for the client's identity key
   * with its account key, authenticated with the QR's ADV secret, then asks the client to restart (515).
   */
  scan (qr: string, phoneNumber: string): boolean {
    const [ref, , identityKeyB64, advSecretB64] = qr.replace(/^https:\/\/wa\.me\/settings\/linked_devices#/, '').split(',')
    const waiting = this.#waitingForScan.get(ref)
    if (!waiting || !identityKeyB64 || !advSecretB64) return false
    this.#pairSuccess(waiting, phoneNumber, Buffer.from(identityKeyB64, 'base64'), Buffer.from(advSecretB64, 'base64'))
    return true
  }

  #stopWaiting (connection: Connection): void {
    for (const [ref, waiting] of this.#waitingForScan) if (waiting === connection) this.#waitingForScan.delete(ref)
  }

  /**
   * The phone links the waiting connection: it signs a device identity for the client's identity
   * key with its account key, authenticated with the ADV secret (from the QR, or derived in the
   * code exchange), then asks the client to restart (515). Returns the new device (`<phone>:<n>`).
   */
  #pairSuccess (waiting: Connection, phoneNumber: string, identityKey: Buffer, advSecret: Buffer): string {
    this.#stopWaiting(waiting)
    const account = this.directory.account(phoneNumber)
    account.linkedDevices++
    const keyIndex = account.linkedDevices
    const deviceDetails = proto.ADVDeviceIdentity.encode({ rawId: randomBytes(4).readUInt32BE(0), timestamp: Math.floor(Date.now() / 1000), keyIndex }).finish()
    const accountSignature = Curve.sign(account.accountKey.private, Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, deviceDetails, identityKey]))
    const details = proto.ADVSignedDeviceIdentity.encode({ details: deviceDetails, accountSignatureKey: account.accountKey.public, accountSignature }).finish()
    const hmac = hmacSign(details, advSecret)
    const device = keyIndex + 1
    account.knownDevices.add(device)
    waiting.send({
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: randomBytes(8).toString('hex') },
      content: [{
        tag: 'pair-success',
        attrs: {},
        content: [
          { tag: 'device-identity', attrs: {}, content: proto.ADVSignedDeviceIdentityHMAC.encode({ details, hmac }).finish() },
          { tag: 'platform', attrs: { name: 'smba' } },
          { tag: 'device', attrs: { jid: `${phoneNumber}:${device}@s.whatsapp.net`, lid: `${account.lid}:${device}@lid` } }
        ]
      }]
    })
    this.#record('pair-success', `${phoneNumber}:${device}`)
    // Linked: the server asks for a new connection, on which the device logs in.
    setTimeout(() => {
      waiting.send({ tag: 'stream:error', attrs: { code: '515' } })
      waiting.socket.close()
    }, RESTART_AFTER_PAIRING_MS)
    return `${phoneNumber}:${device}`
  }

  /** The companion's side of linking by code: `companion_hello` (it shows a code) and `companion_finish`. */
  #codeExchange (connection: Connection, iq: BinaryNode, registration: BinaryNode): void {
    const bytes = (tag: string) => {
      const content = getBinaryNodeChildBuffer(registration, tag)
      return content ? Buffer.from(content) : undefined
    }
    const result: BinaryNode = { tag: 'iq', attrs: { from: S_WHATSAPP_NET, type: 'result', id: iq.attrs.id } }
    if (registration.attrs.stage === 'companion_hello') {
      const wrapped = bytes('link_code_pairing_wrapped_companion_ephemeral_pub')
      const phone = jidDecode(registration.attrs.jid ?? '')?.user
      if (!wrapped || !phone) return connection.send({ ...result, attrs: { ...result.attrs, type: 'error' }, content: [{ tag: 'error', attrs: { code: '400', text: 'bad-request' } }] })
      const ref = randomBytes(16).toString('hex')
      this.#codeRequests.set(ref, { connection, phone, wrappedCompanionEphemeral: wrapped })
      this.#record('pair-device', `code requested for ${phone}`)
      return connection.send({ ...result, content: [{ tag: 'link_code_companion_reg', attrs: {}, content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(ref) }] }] })
    }
    if (registration.attrs.stage !== 'companion_finish') return connection.send(result)
    const ref = bytes('link_code_pairing_ref')?.toString() ?? ''
    const request = this.#codeRequests.get(ref)
    const bundle = bytes('link_code_pairing_wrapped_key_bundle')
    const identity = bytes('companion_identity_public')
    let advSecret: Buffer | undefined
    try {
      if (request?.pairing && bundle && identity) advSecret = request.pairing.finish(bundle, identity)
    } catch (err) {
      this.#record('error', `pairing code for ${request?.phone}: ${(err as Error).message}`)
    }
    if (!request || !advSecret || !identity) {
      request?.settle?.({ linked: false, reason: 'wrong-code' })
      return connection.send({ ...result, attrs: { ...result.attrs, type: 'error' }, content: [{ tag: 'error', attrs: { code: '400', text: 'bad-request' } }] })
    }
    // The client marks itself registered on this reply, which must come before the restart.
    connection.send(result)
    this.#codeRequests.delete(ref)
    request.settle?.({ linked: true, device: this.#pairSuccess(connection, request.phone, identity, advSecret) })
  }

  /**
   * The phone's user enters the code a companion shows for linking to `phoneNumber`. Resolves once
   * the companion finished the exchange: linked, or a wrong code (the companion may be given another try).
   */
  async enterPairingCode (phoneNumber: string, code: string): Promise<PairingCodeOutcome> {
    const entry = [...this.#codeRequests.entries()].find(([, request]) => request.phone === phoneNumber)
    if (!entry) return { linked: false, reason: 'no-request' }
    const [ref, request] = entry
    request.pairing = new PrimaryPairing(this.directory.account(phoneNumber).accountKey)
    const wrappedPrimaryEphemeral = await request.pairing.enterCode(code.toUpperCase(), request.wrappedCompanionEphemeral)
    const outcome = new Promise<PairingCodeOutcome>((resolve) => {
      const timer = setTimeout(() => resolve({ linked: false, reason: 'timeout' }), PAIRING_CODE_EXCHANGE_MS)
      request.settle = (result) => { clearTimeout(timer); resolve(result) }
    })
    request.connection.send({
      tag: 'notification',
      attrs: { from: S_WHATSAPP_NET, type: 'link_code_companion_reg', id: randomBytes(8).toString('hex'), t: unixNow() },
      content: [{
        tag: 'link_code_companion_reg',
        attrs: { stage: 'primary_hello' },
        content: [
          { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: wrappedPrimaryEphemeral },
          { tag: 'primary_identity_pub', attrs: {}, content: request.pairing.identityPublic },
          { tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(ref) }
        ]
      }]
    })
    return outcome
  }

  /** The phone removes the linked device (`<user>:<device>`): its connection ends with 401. */
  logout (device: string): boolean {
    const live = this.#devices.get(device)
    if (!live) return false
    this.#devices.delete(device)
    const [user, number] = device.split(':')
    this.directory.account(user).knownDevices.delete(Number(number))
    this.#offline.delete(device)
    live.send({ tag: 'failure', attrs: { reason: '401' } })
    live.socket.close()
    this.#record('logged-out', device)
    return true
  }

  /** Another client logged in with this device elsewhere: the live one is replaced (440). */
  replace (device: string): boolean {
    const live = this.#devices.get(device)
    if (!live) return false
    this.#devices.delete(device)
    live.send({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] })
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
      live.send({ tag: 'stream:error', attrs: { code: String(code) } })
      live.socket.close()
    }
    this.#record('closed', `${device} dropped${code === undefined ? '' : ` with ${code}`}`)
    return true
  }

  /** Connections showing a QR that was not scanned yet. */
  waitingForScan (): number {
    return new Set(this.#waitingForScan.values()).size
  }

  /** Linked devices with a live connection. */
  liveDevices (): string[] {
    return [...this.#devices.keys()]
  }

  #offerQr (connection: Connection): void {
    const refs = Array.from({ length: this.#options.qrRefs ?? DEFAULT_QR_REFS }, () => `2@${randomBytes(32).toString('base64')}`)
    for (const ref of refs) this.#waitingForScan.set(ref, connection)
    connection.send({
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: randomBytes(8).toString('hex'), xmlns: 'md' },
      content: [{ tag: 'pair-device', attrs: {}, content: refs.map((ref) => ({ tag: 'ref', attrs: {}, content: Buffer.from(ref) })) }]
    })
    this.#record('pair-device', refs[0])
  }
}
