import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { LedgerPort } from '../ownership/index.ts'
import {
  type ConnectionUpdate, type GroupPort, type InboundMessage, type OutboundContent, type OutboundFile, type SendOptions, type SocketEvents,
  type SocketOptions, type WaSocket
} from './socket-port.ts'
import { isGroupJid, TestGroups } from './test-groups.ts'
import type { TestArea } from './test-area.ts'
import { testCallPort, TestCalls } from './test-calls.ts'
import { testHistoryPort, TestHistory } from './test-history.ts'
import { SYNC_TYPES_OF, type HistoryPort } from './history-port.ts'
import { TestChats, testChatPort } from './test-chats.ts'
import { TestPolls, testPollPort } from './test-polls.ts'
import { TestProfiles, testProfilePort } from './test-profiles.ts'
import { testStatusPort } from './test-status.ts'
import type { CallPort } from './calls-port.ts'
import type { ChatPort } from './chats-port.ts'
import type { OutboundPoll, PollPort } from './polls-port.ts'
import type { ProfilePort } from './profiles-port.ts'
import type { StatusPort } from './status-port.ts'

export interface TestWhatsAppOptions {
  /** Time between QR references, and how many are offered before the socket closes with 408. */
  qrIntervalMs: number
  qrRefs: number
  /** How long end() waits for a slow closing handshake (slowClose) before the socket is terminated. */
  closeTimeoutMs: number
}

const DEFAULT_OPTIONS: TestWhatsAppOptions = { qrIntervalMs: 20_000, qrRefs: 6, closeTimeoutMs: 1_000 }
const CLOSE = { loggedOut: 401, timedOut: 408, connectionReplaced: 440, restartRequired: 515 } as const

export interface Sent {
  to: string
  text?: string
  poll?: OutboundPoll
  quoted?: string
  /** The JIDs a text or caption mentions. */
  mentions?: string[]
  reaction?: { messageId: string, emoji: string }
  /** A media message: its kind and type, and the size and hex SHA-256 of the file read from its stream. */
  media?: { kind: string, mimetype: string, size: number, sha256: string, caption?: string, ptt?: boolean }
  /** A location, a contact card, an edit or a deletion. */
  content?: OutboundContent
  /** A status post's batch: the JIDs it went to, and a text post's background (ARGB) and font. */
  status?: { statusJidList: string[], backgroundArgb?: number, font?: number }
  messageId: string
  /** performance.now() when WhatsApp took it. */
  at: number
}

/**
 * An in-process stand-in for WhatsApp: sockets emit the sequences Baileys emits (connecting, QR
 * references then 408, creds + 515 after a scan, open), and one live connection per company is
 * enforced through the ownership ledger: a second one is closed with 440, as WhatsApp does.
 * `groups` is its WhatsApp groups (test-groups.ts): what tests do as the other participants.
 */
export class TestWhatsApp {
  readonly options: TestWhatsAppOptions
  readonly sent = new Map<string, Sent[]>()
  /** Its groups; a change is told to the open connection of each member's number. */
  readonly groups = new TestGroups((phone) => this.#openConnectionsOf(phone))
  /** The polls companies sent; tests vote on them as contacts. */
  readonly polls = new TestPolls((companyId) => this.socketOf(companyId))
  /** Numbers' profiles and block lists; a change by a number's phone is told to its open connections. */
  readonly profiles = new TestProfiles(
    (phone) => this.#openConnectionsOf(phone), () => [...this.#live.values()].filter((socket) => socket.state === 'open')
  )

  /** Calls tests make to companies (test-calls.ts): told to the company's open connection. */
  readonly calls = new TestCalls((companyId, event, payload) => {
    const socket = this.#live.get(companyId)
    if (socket?.state !== 'open') return false
    socket.emitLater(event, payload)
    return true
  })

  /** History the companies' phones send (test-history.ts): told to the company's open connection, as its mode takes it. */
  readonly history = new TestHistory((companyId, notices) => {
    const socket = this.#live.get(companyId)
    if (socket?.state !== 'open') return false
    const taken: readonly string[] = SYNC_TYPES_OF[socket.history.settings.mode]
    socket.emitLater('historyNotices', notices.filter((notice) => taken.includes(notice.syncType)))
    return true
  })

  /** Chat state per number (archive, pin, mute, read, timer); the phone's changes are told to the number's open connections. */
  readonly chats = new TestChats((phone) => this.#openConnectionsOf(phone))
  /** Presence updates per company, in order (`composing@<jid>`). */
  readonly presences = new Map<string, string[]>()
  readonly #stalls = new Map<string, Promise<void>>()
  readonly #live = new Map<string, TestSocket>()
  readonly #refusals = new Map<string, number>()
  readonly #slowCloses = new Map<string, number>()
  /** Each company's linked number, as its last connection knew it. */
  readonly #phones = new Map<string, string>()
  readonly #ledger: LedgerPort

  constructor (ledger: LedgerPort, options: Partial<TestWhatsAppOptions> = {}) {
    this.#ledger = ledger
    this.options = { ...DEFAULT_OPTIONS, ...options }
  }

  /** A socket factory for one replica; `ledger` replaces the shared one for its sockets only. */
  factory (replica: string, ledger: LedgerPort = this.#ledger) {
    return (options: SocketOptions): WaSocket => new TestSocket(this, options, replica, ledger)
  }

  register (companyId: string, socket: TestSocket | undefined): void {
    if (socket) this.#live.set(companyId, socket)
    else this.#live.delete(companyId)
    if (socket?.phone) this.#phones.set(companyId, socket.phone)
  }

  /** The company's linked number (E.164 digits), once a phone has linked it: how groups name the company. */
  phoneOf (companyId: string): string | undefined {
    return this.#live.get(companyId)?.phone ?? this.#phones.get(companyId)
  }

  #openConnectionsOf (phone: string): TestSocket[] {
    return [...this.#live.values()].filter((socket) => socket.state === 'open' && socket.phone === phone)
  }

  /** What the company sent to one chat (a group or a person), in order. */
  sentTo (companyId: string, jid: string): Sent[] {
    return (this.sent.get(companyId) ?? []).filter((sent) => sent.to === jid)
  }

  socketOf (companyId: string): TestSocket | undefined {
    return this.#live.get(companyId)
  }

  /** The phone scans the current QR (or accepts the pairing code): the device is linked. */
  scan (companyId: string): boolean {
    return this.#live.get(companyId)?.link() ?? false
  }

  /** A contact writes to the company. */
  deliver (companyId: string, message: Partial<InboundMessage> & { from: string, text: string }): string {
    const id = message.id ?? `IN${randomBytes(8).toString('hex').toUpperCase()}`
    this.#live.get(companyId)?.emitLater('messages', [{ id, timestamp: Math.floor(Date.now() / 1000), ...message }])
    return id
  }

  /** While set, every connection attempt of the company is closed with `code` before it opens. */
  refuse (companyId: string, code: number | undefined): void {
    if (code === undefined) this.#refusals.delete(companyId)
    else this.#refusals.set(companyId, code)
  }

  refusalFor (companyId: string): number | undefined {
    return this.#refusals.get(companyId)
  }

  /** The server closes the company's connection with `code` (428, 440, 401, 403, 500, 515, …). */
  drop (companyId: string, code: number): void {
    this.#live.get(companyId)?.close(code)
  }

  /** WhatsApp stops taking the company's messages until `release()` (a send then hangs, as on a dead link). */
  stall (companyId: string): () => void {
    let release!: () => void
    this.#stalls.set(companyId, new Promise<void>((resolve) => { release = resolve }))
    return () => {
      this.#stalls.delete(companyId)
      release()
    }
  }

  /** The company's sockets take `ms` to finish a closing handshake (a slow peer); undefined ends that. */
  slowClose (companyId: string, ms: number | undefined): void {
    if (ms === undefined) this.#slowCloses.delete(companyId)
    else this.#slowCloses.set(companyId, ms)
  }

  closeHandshakeMs (companyId: string): number {
    return this.#slowCloses.get(companyId) ?? 0
  }

  async waitIfStalled (companyId: string): Promise<void> {
    await this.#stalls.get(companyId)
  }

  record (companyId: string, sent: Sent): void {
    const list = this.sent.get(companyId) ?? []
    list.push(sent)
    this.sent.set(companyId, list)
  }
}

export class TestSocket implements WaSocket {
  readonly #whatsapp: TestWhatsApp
  readonly #options: SocketOptions
  readonly #replica: string
  readonly #ledger: LedgerPort
  readonly #listeners = new Map<keyof SocketEvents, Set<(payload: never) => void>>()
  readonly #timers = new Set<NodeJS.Timeout>()
  /** This socket in the ledger: one login of the linked device. */
  readonly #connection = randomUUID()
  #state: 'connecting' | 'qr' | 'open' | 'closed' = 'connecting'
  #qrsShown = 0
  #pairingCode: string | undefined
  readonly groups: GroupPort
  readonly polls: PollPort
  readonly calls: CallPort
  readonly profiles: ProfilePort
  readonly chats: ChatPort
  readonly status: StatusPort
  readonly history: HistoryPort

  constructor (whatsapp: TestWhatsApp, options: SocketOptions, replica: string, ledger: LedgerPort) {
    this.#whatsapp = whatsapp
    this.#options = options
    this.#replica = replica
    this.#ledger = ledger
    this.groups = whatsapp.groups.port(async () => {
      await this.#writable()
      const phone = this.phone
      if (!phone) throw new Error('the device is not linked to a number')
      return phone
    })
    const area: TestArea = {
      whatsapp,
      companyId: options.companyId,
      phone: () => this.phone,
      writable: (jid) => this.#writable(jid),
      emitLater: (event, payload) => this.emitLater(event, payload),
      record: (sent) => whatsapp.record(options.companyId, sent)
    }
    this.polls = testPollPort(area)
    this.calls = testCallPort(area)
    this.profiles = testProfilePort(area)
    this.chats = testChatPort(area)
    this.status = testStatusPort(area)
    this.history = testHistoryPort(area, options.history)
    this.#later(() => { void this.#connect() }, 0)
  }

  get state () { return this.#state }

  /** The linked number (E.164 digits), once the phone has linked this device. */
  get phone (): string | undefined {
    return this.#options.auth.creds.me?.id.split(/[:@]/)[0]
  }

  /** Read through a method: it can change while an await is pending. */
  #ended (): boolean { return this.#state === 'closed' }

  on<K extends keyof SocketEvents> (event: K, listener: (payload: SocketEvents[K]) => void): void {
    const set = this.#listeners.get(event) ?? new Set()
    set.add(listener as (payload: never) => void)
    this.#listeners.set(event, set)
  }

  listenerCount (): number {
    let count = 0
    for (const set of this.#listeners.values()) count += set.size
    return count
  }

  timerCount (): number {
    return this.#timers.size
  }

  #emit<K extends keyof SocketEvents> (event: K, payload: SocketEvents[K]): void {
    for (const listener of this.#listeners.get(event) ?? []) (listener as (payload: SocketEvents[K]) => void)(payload)
  }

  emitLater<K extends keyof SocketEvents> (event: K, payload: SocketEvents[K]): void {
    this.#later(() => this.#emit(event, payload), 0)
  }

  #later (fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      fn()
    }, ms)
    this.#timers.add(timer)
  }

  async #connect (): Promise<void> {
    if (this.#state === 'closed') return
    const { companyId, auth } = this.#options
    this.#emit('connection', { connection: 'connecting' })
    const refusal = this.#whatsapp.refusalFor(companyId)
    if (refusal !== undefined) {
      this.close(refusal)
      return
    }
    if (!auth.creds.account) {
      this.#whatsapp.register(companyId, this)
      this.#state = 'qr'
      this.#showQr()
      return
    }
    const accepted = await this.#ledger.open(companyId, this.#replica, this.#connection)
    if (this.#ended()) {
      if (accepted) await this.#ledger.close(companyId, this.#connection, 'ended while connecting')
      return
    }
    if (!accepted) {
      this.close(CLOSE.connectionReplaced)
      return
    }
    this.#whatsapp.register(companyId, this)
    this.#state = 'open'
    this.#emit('connection', { connection: 'open' })
  }

  #showQr (): void {
    if (this.#state !== 'qr') return
    if (this.#qrsShown >= this.#whatsapp.options.qrRefs) {
      this.close(CLOSE.timedOut)
      return
    }
    this.#qrsShown++
    const ref = randomBytes(12).toString('base64')
    const { creds } = this.#options.auth
    const qr = [ref, creds.noiseKey.public, creds.signedIdentityKey.public, creds.advSecretKey]
      .map((part) => (typeof part === 'string' ? part : Buffer.from(part).toString('base64'))).join(',')
    this.#emit('connection', { qr: `https://wa.me/settings/linked_devices#${qr}` } satisfies ConnectionUpdate)
    this.#later(() => this.#showQr(), this.#whatsapp.options.qrIntervalMs)
  }

  /** The phone linked this device: creds gain an account, then the server asks for a restart (515). */
  link (): boolean {
    if (this.#state !== 'qr') return false
    const { creds } = this.#options.auth
    // A mobile number of a real plan (+7 9xx): what is done with the number (a status post names it) normalises it.
    creds.me = { id: `79${randomDigits(9)}:${1 + Math.floor(Math.random() * 20)}@s.whatsapp.net`, name: 'Test phone' }
    creds.account = {
      details: randomBytes(32),
      accountSignatureKey: randomBytes(32),
      accountSignature: randomBytes(64),
      deviceSignature: randomBytes(64)
    }
    creds.registered = true
    this.#emit('creds', creds)
    this.close(CLOSE.restartRequired)
    return true
  }

  /** Server-side close: the socket is gone and says why. */
  close (code: number): void {
    if (this.#state === 'closed') return
    const wasOpen = this.#state === 'open'
    this.#teardown()
    if (wasOpen) void this.#ledger.close(this.#options.companyId, this.#connection, `closed ${code}`)
    this.#emit('connection', { connection: 'close', closeCode: code })
    this.#listeners.clear()
  }

  #teardown (): void {
    this.#state = 'closed'
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    if (this.#whatsapp.socketOf(this.#options.companyId) === this) this.#whatsapp.register(this.#options.companyId, undefined)
  }

  /** Every write checks the lease's deadline first, as the Baileys adapter does: one too late cuts the socket. */
  #requireOpen (): void {
    if (this.#state !== 'open') throw Object.assign(new Error('Connection Closed'), { output: { statusCode: 428 } })
    const { writableUntil } = this.#options
    if (writableUntil && performance.now() >= writableUntil()) {
      this.#teardown()
      this.#listeners.clear()
      void this.#ledger.close(this.#options.companyId, this.#connection, 'cut off: lease deadline passed')
      throw Object.assign(new Error('Connection Closed: the lease deadline has passed'), { output: { statusCode: 428 } })
    }
  }

  /** A write waits while WhatsApp stalls; one to a group is refused unless the number may write there. */
  async #writable (groupJid?: string): Promise<void> {
    this.#requireOpen()
    await this.#whatsapp.waitIfStalled(this.#options.companyId)
    if (groupJid !== undefined && isGroupJid(groupJid)) this.#whatsapp.groups.assertMayWrite(groupJid, this.phone)
  }

  async sendText (jid: string, text: string, options: SendOptions = {}) {
    await this.#writable(jid)
    const messageId = options.messageId ?? `3EB0${randomBytes(8).toString('hex').toUpperCase()}`
    this.#whatsapp.record(this.#options.companyId, { to: jid, text, ...sendOptions(options), messageId, at: performance.now() })
    this.#later(() => this.#emit('receipts', [
      { id: messageId, to: jid, status: 'delivered', timestamp: Math.floor(Date.now() / 1000) }
    ]), 0)
    return { messageId, timestamp: Math.floor(Date.now() / 1000) }
  }

  async sendContent (jid: string, content: OutboundContent, options: SendOptions = {}) {
    await this.#writable(jid)
    const messageId = options.messageId ?? `3EB0${randomBytes(8).toString('hex').toUpperCase()}`
    this.#whatsapp.record(this.#options.companyId, { to: jid, content, ...sendOptions(options), messageId, at: performance.now() })
    return { messageId, timestamp: Math.floor(Date.now() / 1000) }
  }

  async phoneOfLid (): Promise<string | undefined> { return undefined }

  async sendMedia (jid: string, file: OutboundFile, options: SendOptions = {}) {
    await this.#writable()
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of file.stream) {
      hash.update(chunk as Buffer)
      size += (chunk as Buffer).length
    }
    // The file is uploaded before the message goes to the group, so a refusal comes after the upload.
    if (isGroupJid(jid)) this.#whatsapp.groups.assertMayWrite(jid, this.phone)
    const messageId = options.messageId ?? `3EB0${randomBytes(8).toString('hex').toUpperCase()}`
    const media = {
      kind: file.kind,
      mimetype: file.mimetype,
      size,
      sha256: hash.digest('hex'),
      ...(file.caption ? { caption: file.caption } : {}),
      ...(file.ptt ? { ptt: true } : {})
    }
    this.#whatsapp.record(this.#options.companyId, { to: jid, media, ...sendOptions(options), messageId, at: performance.now() })
    return { messageId, timestamp: Math.floor(Date.now() / 1000) }
  }

  /** The test transport carries no inbound media: the simulator and real Baileys test that path. */
  async downloadMedia (): Promise<Readable> {
    this.#requireOpen()
    throw new Error('the test transport has no media server')
  }

  async react (jid: string, key: { id: string, fromMe: boolean }, emoji: string) {
    await this.#writable(jid)
    const messageId = `3EB0${randomBytes(8).toString('hex').toUpperCase()}`
    this.#whatsapp.record(this.#options.companyId, { to: jid, reaction: { messageId: key.id, emoji }, messageId, at: performance.now() })
    return { messageId, timestamp: Math.floor(Date.now() / 1000) }
  }

  async markRead (): Promise<void> { this.#requireOpen() }
  async setPresence (presence: string, jid?: string): Promise<void> {
    this.#requireOpen()
    const list = this.#whatsapp.presences.get(this.#options.companyId) ?? []
    list.push(`${presence}@${jid ?? ''}`)
    this.#whatsapp.presences.set(this.#options.companyId, list)
  }

  async onWhatsApp (jids: string[]) {
    this.#requireOpen()
    return jids.map((jid) => ({ jid, exists: this.#whatsapp.groups.isOnWhatsApp(jid) }))
  }

  async requestPairingCode (phoneDigits: string): Promise<string> {
    if (this.#state !== 'qr') throw new Error('a pairing code needs a socket waiting for a QR')
    if (!/^\d{10,15}$/.test(phoneDigits)) throw new Error('pairing needs E.164 digits')
    this.#pairingCode = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase()
    return this.#pairingCode
  }

  get pairingCode (): string | undefined { return this.#pairingCode }

  /** Closes as the adapter does: the handshake may take a while, and past closeTimeoutMs the socket is terminated. */
  async end (): Promise<void> {
    if (this.#state === 'closed') return
    const wasOpen = this.#state === 'open'
    this.#teardown()
    this.#listeners.clear()
    if (!wasOpen) return
    const handshakeMs = this.#whatsapp.closeHandshakeMs(this.#options.companyId)
    const { closeTimeoutMs } = this.#whatsapp.options
    if (handshakeMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(handshakeMs, closeTimeoutMs)))
    await this.#ledger.close(this.#options.companyId, this.#connection, handshakeMs > closeTimeoutMs ? 'terminated' : 'ended')
  }

  async logout (): Promise<void> {
    this.#requireOpen()
    this.close(CLOSE.loggedOut)
  }
}

/** What a send records of its options: the quoted message's id (as before mentions existed) and the mentions when there are any. */
function sendOptions (options: SendOptions): Pick<Sent, 'quoted' | 'mentions'> {
  return { quoted: options.quoted?.id, ...(options.mentions?.length ? { mentions: options.mentions } : {}) }
}

function randomDigits (count: number): string {
  return Array.from({ length: count }, () => Math.floor(Math.random() * 10)).join('')
}
