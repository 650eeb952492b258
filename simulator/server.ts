import { createServer, STATUS_CODES, type IncomingMessage } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'
import { isJidGroup, type BinaryNode } from '@whiskeysockets/baileys'
import { SimulatorIdentity } from './noise.ts'
import { deviceName, Directory, type Account, type DeviceAddress, type ReceivedMessage } from './accounts.ts'
import { accept, LinkedDevices, type Connection } from './connections.ts'
import { Contacts } from './contacts.ts'
import { Linking, type PairingCodeOutcome } from './linking.ts'
import type { Recorder, SimulatorLogEntry } from './log.ts'
import { Mailbox, type InboundOptions } from './mailbox.ts'
import { answerIq } from './queries.ts'
import { MediaServer } from './media.ts'
import { GroupService } from './group-service.ts'
import { PollVoters } from './polls.ts'
import { ProfileService } from './profiles.ts'
import { CallService } from './calls.ts'
import { AppStateService } from './app-state.ts'
import { STATUS_JID, StatusService } from './status.ts'
import { HistoryService } from './history-sync.ts'
import { Peers, type GatedListener, type PeerConnection } from './peers.ts'

export type { SimulatorLogEntry } from './log.ts'
export type { InboundOptions } from './mailbox.ts'
export type { PairingCodeOutcome } from './linking.ts'
export type { PeerConnection } from './peers.ts'

export interface SimulatorOptions {
  host?: string
  port?: number
  qrRefs?: number
  identity?: SimulatorIdentity
  /** Phone numbers that are not on WhatsApp (every other number is). */
  notOnWhatsApp?: string[]
  /** The media server's HTTPS port (0: any free one). */
  mediaPort?: number
  /** The host clients reach the media server by (in URLs): 127.0.0.1 unless it runs behind another name. */
  mediaPublicHost?: string
  /** The most messages one history sync chunk carries (default 3000; POST /accounts/:phone/history can set it per account). */
  historyMessagesPerChunk?: number
  /** Messages newer than this many days come in the RECENT sync; older ones only in a FULL one (default 90). */
  historyRecentDays?: number
  /**
   * The only client addresses the WebSocket and media servers accept (e.g. a proxy's outgoing
   * address, `['127.0.0.2']`); a connection from any other is destroyed at once. Default: any.
   */
  allowedPeers?: string[]
}

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
  #listener: GatedListener | undefined
  /** Where each connection came from, and which addresses may connect (PROTOCOL.md § 21). */
  readonly #peers: Peers
  /** The peer record of each WebSocket connection, to name the device that logs in on it. */
  readonly #peerOf = new WeakMap<Connection, PeerConnection>()
  readonly #devices: LinkedDevices
  readonly #linking: Linking
  readonly #mailbox: Mailbox
  readonly #contacts: Contacts
  /** WhatsApp's media servers (HTTPS): uploads, downloads, expiry. */
  readonly media: MediaServer
  /** WhatsApp groups: their state, queries, notifications and messages, and the participants' side. */
  readonly groups: GroupService
  /** Contacts and participants voting on the polls linked devices sent them. */
  readonly polls: PollVoters
  /** Accounts' profiles (about, picture, business) and block lists. */
  readonly profiles: ProfileService
  /** Calls from simulated contacts to linked devices, and the devices' rejections. */
  readonly calls: CallService
  /** App-state sync (archive, pin, mute, read, delete of chats): the shared key, the collections, the phone's changes. */
  readonly appState: AppStateService
  /** Status posts (stories): the linked devices' posts as their recipients opened them, and contacts' posts. */
  readonly status: StatusService
  /** The phones' chat history, synced to newly linked devices and fetched on demand. */
  readonly history: HistoryService

  constructor (options: SimulatorOptions = {}) {
    this.#options = options
    this.identity = options.identity ?? new SimulatorIdentity()
    this.directory = new Directory(options.notOnWhatsApp)
    const record: Recorder = (kind, detail) => this.#record(kind, detail)
    this.#peers = new Peers(options.allowedPeers)
    this.#devices = new LinkedDevices(this.directory, record)
    this.#linking = new Linking(this.directory, record, options)
    this.#mailbox = new Mailbox(this.directory, record)
    this.media = new MediaServer(record, { publicHost: options.mediaPublicHost, peers: this.#peers })
    this.#contacts = new Contacts(this.directory, this.#devices, this.#mailbox, this.media, record)
    this.groups = new GroupService({
      directory: this.directory, devices: this.#devices, mailbox: this.#mailbox, contacts: this.#contacts, media: this.media, record
    })
    this.polls = new PollVoters(this.directory, this.#contacts, this.groups)
    this.profiles = new ProfileService({
      directory: this.directory, devices: this.#devices, mailbox: this.#mailbox, media: this.media, record
    })
    this.calls = new CallService(this.directory, this.#devices, this.#mailbox, record)
    this.appState = new AppStateService({ directory: this.directory, devices: this.#devices, mailbox: this.#mailbox, record })
    this.history = new HistoryService({
      directory: this.directory,
      devices: this.#devices,
      mailbox: this.#mailbox,
      media: this.media,
      record,
      messagesPerChunk: options.historyMessagesPerChunk,
      recentDays: options.historyRecentDays
    })
    this.status = new StatusService({
      directory: this.directory, devices: this.#devices, mailbox: this.#mailbox, contacts: this.#contacts, record
    })
  }

  async start (): Promise<{ url: string, port: number }> {
    const server = new WebSocketServer({ noServer: true })
    // As ws's own server answers a request that is no WebSocket upgrade.
    const http = createServer((_request, response) => {
      response.writeHead(426, { 'content-type': 'text/plain' })
      response.end(STATUS_CODES[426])
    })
    http.on('upgrade', (request: IncomingMessage, socket, head) => {
      server.handleUpgrade(request, socket, head, (client) => server.emit('connection', client, request))
    })
    server.on('connection', (socket: WebSocket, request: IncomingMessage) => this.#serve(socket, request))
    // The HTTP server never listens itself: the peers' gate hands it the connections it accepts.
    this.#listener = await this.#peers.listen('ws', http, this.#options.host ?? '127.0.0.1', this.#options.port ?? 0)
    this.#server = server
    await this.media.start(this.#options.host ?? '127.0.0.1', this.#options.mediaPort ?? 0)
    const { port } = this.#listener
    return { url: `ws://127.0.0.1:${port}/ws/chat`, port }
  }

  /** The WebSocket port Baileys connects to, once started. */
  get port (): number | undefined {
    return this.#listener?.port
  }

  async stop (): Promise<void> {
    const server = this.#server
    const listener = this.#listener
    this.#server = undefined
    this.#listener = undefined
    if (!server) return
    await this.media.stop()
    for (const client of server.clients) client.terminate()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await listener?.close()
  }

  /**
   * Only these client addresses may connect to the WebSocket and media servers from now on
   * (connections already open stay); undefined: any address again.
   */
  allowPeers (addresses: string[] | undefined): void {
    this.#peers.allow(addresses)
  }

  /** The addresses allowed to connect, or undefined when any may. */
  allowedPeers (): string[] | undefined {
    return this.#peers.allowed
  }

  /** Every connection to the WebSocket and media servers so far, accepted and refused, with its client's address. */
  peers (): PeerConnection[] {
    return this.#peers.list()
  }

  /**
   * The contact `from` writes to the account `to`: every live linked device of `to` gets the
   * message, encrypted when the device has opened a Signal session with the contact, otherwise as
   * plaintext; offline devices get it at their next login. Returns the message id and the counts
   * (`blocked`: `to` blocked `from`, and nobody got it).
   */
  deliver (options: InboundOptions): Promise<{ id: string, devices: number, encrypted: number, queued: number, blocked?: true }> {
    // WhatsApp hands nothing from a contact the account blocked to its devices (the contact sees one tick).
    if (this.profiles.hasBlocked(options.to, options.from)) return Promise.resolve(this.profiles.dropped(options))
    return this.#contacts.deliver(options)
  }

  /** The contact `phone` reads messages it received from `to`'s devices: they get a read receipt. */
  read (phone: string, to: string, messageIds: string[]): number {
    return this.#contacts.read(phone, to, messageIds)
  }

  /** WhatsApp's servers drop the file of a media message (its downloads answer 410) until a phone uploads it again. */
  expireMedia (messageId: string): boolean {
    return this.#contacts.expireMedia(messageId)
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
    return this.#linking.scan(qr, phoneNumber)
  }

  /**
   * The phone's user enters the code a companion shows for linking to `phoneNumber`. Resolves once
   * the companion finished the exchange: linked, or a wrong code (the companion may be given another try).
   */
  enterPairingCode (phoneNumber: string, code: string): Promise<PairingCodeOutcome> {
    return this.#linking.enterPairingCode(phoneNumber, code)
  }

  /** The phone removes the linked device (`<user>:<device>`): its connection ends with 401, and nothing more is kept for it. */
  logout (device: string): boolean {
    if (!this.#devices.logout(device)) return false
    this.#mailbox.discard(device)
    this.history.forget(device)
    return true
  }

  /** Another client logged in with this device elsewhere: the live one is replaced (440). */
  replace (device: string): boolean {
    return this.#devices.replace(device)
  }

  /** Breaks the device's connection: with a stream error code (e.g. 515, 503), or by dropping the socket. */
  drop (device: string, code?: number): boolean {
    return this.#devices.drop(device, code)
  }

  /** Connections showing a QR that was not scanned yet. */
  waitingForScan (): number {
    return this.#linking.waitingForScan()
  }

  /** Linked devices with a live connection. */
  liveDevices (): string[] {
    return this.#devices.names()
  }

  #record (kind: SimulatorLogEntry['kind'], detail: string): void {
    this.log.push({ at: Date.now(), kind, detail })
  }

  #serve (socket: WebSocket, request: IncomingMessage): void {
    const connection = accept(socket, this.identity, {
      handshake: (connection, payload) => {
        this.#record('handshake', payload.devicePairingData ? 'unlinked device' : `login ${payload.username ?? ''}:${payload.device ?? 0}`)
        if (payload.devicePairingData) this.#linking.offerQr(connection, payload.devicePairingData)
        else this.#login(connection, { user: String(payload.username ?? ''), device: payload.device ?? 0 })
      },
      stanza: (connection, node) => this.#route(connection, node),
      failed: (_connection, err) => this.#record('error', err.message),
      closed: (connection) => {
        this.#record('closed', connection.device ? deviceName(connection.device) : '')
        this.#mailbox.closed(connection)
        this.#devices.forget(connection)
        this.#linking.forget(connection)
      }
    })
    const peer = this.#peers.of(request.socket)
    if (peer) this.#peerOf.set(connection, peer)
  }

  /** A linked device logs in: what WhatsApp kept for it while it was offline follows. */
  #login (connection: Connection, device: DeviceAddress): void {
    if (!this.#devices.login(connection, device)) return
    const peer = this.#peerOf.get(connection)
    if (peer) peer.device = deviceName(device)
    const handedOver = this.#mailbox.handOver(connection)
    const keyShared = this.appState.loggedIn(connection)
      .catch((err: unknown) => this.#record('error', `app-state key share: ${(err as Error).message}`))
    // History comes after the offline messages' end (`<ib><offline>`): Baileys awaits it from then on.
    Promise.all([handedOver, keyShared]).then(() => this.history.loggedIn(connection))
      .catch((err: unknown) => this.#record('error', `history sync: ${(err as Error).message}`))
  }

  /** A delivery or read receipt is how a device acknowledges a message: WhatsApp forgets it then, and the contact sees it. */
  #receipt (connection: Connection, node: BinaryNode): void {
    this.#mailbox.receipted(connection, node)
    if (node.attrs.type === 'hist_sync') {
      this.history.receipted(connection, node).catch((err: unknown) => this.#record('error', `history sync: ${(err as Error).message}`))
    } else if (isJidGroup(node.attrs.to)) this.groups.receiptFromDevice(connection, node)
    else if (node.attrs.to === STATUS_JID) this.status.receiptFromDevice(connection, node)
    else this.#contacts.receiptFromDevice(connection, node)
  }

  /** Who answers a client's query: linking by code, groups, or the rest of the server. */
  #query (connection: Connection, iq: BinaryNode): void {
    const firstChild = Array.isArray(iq.content) ? iq.content[0] : undefined
    if (firstChild?.tag === 'link_code_companion_reg') this.#linking.codeExchange(connection, iq, firstChild)
    else if (iq.attrs.xmlns === 'w:g2') this.groups.answerIq(connection, iq)
    // A group's picture is set and read through the profile-picture query, with the group as `target`.
    else if (iq.attrs.xmlns === 'w:profile:picture' && isJidGroup(iq.attrs.target)) this.groups.answerPictureIq(connection, iq)
    else if (this.profiles.answers(iq)) this.profiles.answerIq(connection, iq)
    else answerIq(connection, iq, this.directory, this.media)
  }

  /** Where each stanza from a client goes. A message is relayed before the next stanza is read. */
  #route (connection: Connection, node: BinaryNode): Promise<void> | undefined {
    this.#record('recv', `${node.tag} ${JSON.stringify(node.attrs)}`)
    if (node.tag === 'message' && isJidGroup(node.attrs.to)) return this.groups.relay(connection, node)
    if (node.tag === 'message' && node.attrs.to === STATUS_JID) return this.status.relay(connection, node)
    // A device's message to its own phone (a history request) carries one <enc>, no <participants>.
    if (node.tag === 'message' && node.attrs.category === 'peer') return this.history.peerMessage(connection, node)
    if (node.tag === 'message') return this.#contacts.relay(connection, node)
    // A device's app-state patches are taken in order, before its next stanza.
    if (node.tag === 'iq' && node.attrs.xmlns === 'w:sync:app:state') return this.appState.answerIq(connection, node)
    if (node.tag === 'iq') this.#query(connection, node)
    // A device asks its phone to upload old media again (its download got 404/410).
    else if (node.tag === 'receipt' && node.attrs.type === 'server-error') this.#contacts.mediaRetry(connection, node)
    else if (node.tag === 'receipt') this.#receipt(connection, node)
    else if (node.tag === 'chatstate') this.#contacts.chatState(connection, node)
    else if (node.tag === 'presence') this.#contacts.presence(connection, node)
    else if (node.tag === 'ack') this.#mailbox.acknowledged(connection, node)
    else if (node.tag === 'call') this.calls.fromDevice(connection, node)
    return undefined
  }
}
