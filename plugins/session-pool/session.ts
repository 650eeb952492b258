import type { FastifyBaseLogger } from 'fastify'
import {
  advances, isGroupJid, userOfJid,
  type DeliveryState, type EventData, type EventType, type InboundMedia, type PairingCodeEventData,
  type UnavailableMedia
} from '../../contracts/index.ts'
import { BoundedMap } from '../../core/bounded-map.ts'
import type { Conversations } from '../conversations/index.ts'
import type { Media } from '../media/index.ts'
import { isoFromSeconds } from '../../core/time.ts'
import type { SessionPoolOptions } from './settings.ts'
import type { PostgresAuthStore } from './auth-store.ts'
import type { ConnectionUpdate, InboundMessage, Receipt, SocketFactory, WaSocket } from './socket-port.ts'
import { fetchInboundMedia } from './inbound-media.ts'

/** The QR renderer, loaded when a first QR is shown (a replica of linked numbers never shows one). */
const qrCodes = async () => (await import('qrcode')).default

/** Baileys' DisconnectReason codes, and what the gateway does with each. */
export const CloseCode = {
  loggedOut: 401,
  forbidden: 403,
  timedOut: 408,
  multideviceMismatch: 411,
  connectionClosed: 428,
  connectionReplaced: 440,
  badSession: 500,
  unavailableService: 503,
  restartRequired: 515
} as const

/** The longest wait between attempts while the company's proxy fails its connections. */
const PROXY_RETRY_MAX_MS = 60_000
/** ± this share of a backoff delay is random, so companies do not reconnect in lockstep. */
const JITTER_SHARE = 0.2
const jittered = (delayMs: number) => Math.round(delayMs * (1 - JITTER_SHARE + Math.random() * 2 * JITTER_SHARE))

/** Why a session ended for good; the pool marks the company offline so no replica retries it. */
export type StopOutcome = 'connection_replaced' | 'logged_out' | 'forbidden' | 'qr_expired' | 'reconnect_failed' | 'fenced'

export type SessionState = 'connecting' | 'qr' | 'pairing' | 'open' | 'reconnecting' | 'breaker_open' | 'stopped'

/** Recent outbound messages whose delivery state a session remembers. */
const RECENT_STATES = 10_000

const STATE_OF_RECEIPT: Record<Receipt['status'], DeliveryState> = {
  server: 'server_ack', delivered: 'delivered', read: 'read', played: 'played', error: 'failed'
}

/** Why WhatsApp refused a message, by its code. */
export function refusalOf (code: string | undefined): { code: string, message: string } {
  const known: Record<string, string> = {
    463: 'WhatsApp refused the message (463): the account may not start this chat now (restricted, or no privacy token for the contact)',
    479: 'WhatsApp refused the message (479): the server rejected its addressing (a stale device session)'
  }
  const value = code ?? 'unknown'
  return { code: value, message: known[value] ?? `WhatsApp refused the message (${value})` }
}

/**
 * The stream's dedup id of an inbound message: one per message and lease epoch. Retries of one
 * publish, and WhatsApp handing the same message to the same lease again, stay one event; the copy
 * a newer holder receives after a takeover is never dropped as a repeat of the older holder's
 * (which may lack its file or its sender's phone, or have been published late), so a consumer that
 * sees both keeps the newer epoch's, as the history does.
 */
export function messageEventId (companyId: string, epoch: number, messageId: string): string {
  return `message:${companyId}:${epoch}:${messageId}`
}

export type Emit = <T extends EventType>(type: T, data: EventData<T>, options?: { eventId?: string }) => void

export interface SessionOptions {
  companyId: string
  epoch: number
  auth: PostgresAuthStore
  factory: SocketFactory
  settings: SessionPoolOptions
  log: FastifyBaseLogger
  emit: Emit
  /** Where received files go (the media bucket). */
  saveMedia: Media['save']
  /** Who contacts are, by phone and by LID. */
  contacts: Pick<Conversations, 'phoneOfLid' | 'learnLid'>
  /** Called once when the session ends on its own (not when the pool stops it). */
  onOutcome: (outcome: StopOutcome) => void
  /** E.164 digits: link with a pairing code instead of a QR. */
  pairingPhone?: string
  /** Told of each socket the session opens, with the session's emit (the pool's socket listeners). */
  onSocket?: (socket: WaSocket, emit: Emit) => void
}

/** The connection's own state as the holder sees it (the contracts' SessionStatus is the reply built from it). */
export interface ConnectionStatus {
  state: SessionState
  connected: boolean
  reconnectAttempts: number
  phoneNumber: string | null
  lastActivity: string | null
  breakerOpenUntil: string | null
  qrCodesGenerated: number
  /** The last thing that went wrong with the connection (a refusal, a drop, a failed reconnect), for people watching. */
  lastError: SessionProblem | null
}

export interface SessionProblem {
  /** The event that reported it: error (its reason), disconnected, reconnect_failed, connection_replaced, logout. */
  reason: string
  /** WhatsApp's close code, when there was one. */
  code: number | null
  at: string
}

/** Events that tell of a problem, and how to name it; a disconnect for the restart after linking (515) is none. */
function problemOf (type: string, data: Record<string, unknown>): Omit<SessionProblem, 'at'> | undefined {
  const code = typeof data.code === 'number' ? data.code : null
  if (type === 'error') return { reason: String(data.reason ?? 'error'), code }
  if (type === 'disconnected') return code === CloseCode.restartRequired ? undefined : { reason: 'disconnected', code }
  if (['reconnect_failed', 'connection_replaced', 'logout'].includes(type)) return { reason: type, code }
  return undefined
}

/**
 * One company's WhatsApp connection on the replica that holds its lease. Health is passive: it is
 * read from events and last activity and never triggers a reconnect (the old 440 storm came from
 * exactly that). Sending never creates or reconnects a socket.
 */
export class Session {
  readonly companyId: string
  readonly epoch: number
  readonly #options: SessionOptions
  #socket: WaSocket | undefined
  /** Inbound messages being published, in order (a media message waits for its file). */
  #inbound: Promise<void> = Promise.resolve()
  /** The delivery state of recent outbound messages: a `message_status` event only ever moves one forward. */
  readonly #states = new BoundedMap<string, DeliveryState>(RECENT_STATES)
  #state: SessionState = 'connecting'
  #stopping = false
  #reconnectAttempts = 0
  /** Connections the company's proxy failed in a row (its own backoff, apart from WhatsApp's closes). */
  #proxyFailures = 0
  #failures: number[] = []
  #breakerOpenUntil = 0
  #timer: NodeJS.Timeout | undefined
  #lastActivity = 0
  /** Since when the session has not been open (performance.now()); undefined while open. */
  #unhealthySince: number | undefined = performance.now()
  #unhealthyReported = false
  #qrCodes = 0
  #pairingRequested = false
  #lastQr: Record<string, unknown> | undefined
  #lastPairing: PairingCodeEventData | undefined

  #lastError: SessionProblem | null = null

  constructor (options: SessionOptions) {
    const emit = options.emit
    this.#options = {
      ...options,
      emit: (type, data, emitOptions) => {
        // Once stop() has begun the lease may already be another replica's: anything still on its
        // way here (a queued inbound message, a receipt, a QR being rendered) is not ours to publish.
        // A received message is the exception: see #publishMessages. A vote is a received message too.
        if (this.#stopping && type !== 'message' && type !== 'poll_vote') {
          options.log.debug({ companyId: options.companyId, type }, 'a stopped session publishes nothing; event dropped')
          return
        }
        const problem = problemOf(type, data)
        if (problem) this.#lastError = { ...problem, at: new Date().toISOString() }
        emit(type, data, emitOptions)
      }
    }
    this.companyId = options.companyId
    this.epoch = options.epoch
  }

  get state (): SessionState { return this.#state }
  get socket (): WaSocket | undefined { return this.#state === 'open' ? this.#socket : undefined }
  get healthy (): boolean { return this.#state === 'open' }

  /**
   * Passive health: when the session has been unhealthy longer than `thresholdMs`, it emits
   * health_check_failed once for that stretch. It never reconnects (that is the lifecycle's job).
   */
  checkHealth (thresholdMs: number): void {
    if (this.#state === 'stopped' || this.#unhealthySince === undefined || this.#unhealthyReported) return
    const unhealthyMs = performance.now() - this.#unhealthySince
    if (unhealthyMs < thresholdMs) return
    this.#unhealthyReported = true
    this.#options.emit('health_check_failed', {
      state: this.#state,
      unhealthyForMs: Math.round(unhealthyMs),
      reconnectAttempts: this.#reconnectAttempts
    })
  }

  status (): ConnectionStatus {
    const me = this.#options.auth.creds.me?.id
    return {
      state: this.#state,
      connected: this.#state === 'open',
      reconnectAttempts: this.#reconnectAttempts,
      phoneNumber: me ? `${userOfJid(me)}@s.whatsapp.net` : null,
      lastActivity: this.#lastActivity ? new Date(this.#lastActivity).toISOString() : null,
      breakerOpenUntil: this.#breakerOpenUntil > Date.now() ? new Date(this.#breakerOpenUntil).toISOString() : null,
      qrCodesGenerated: this.#qrCodes,
      lastError: this.#lastError
    }
  }

  /** What initialize shows: the current QR or pairing code, or that the device is connected. */
  snapshot (): { status: 'qr' | 'pairing_code' | 'connected', data: Record<string, unknown> } | undefined {
    if (this.#state === 'open') return { status: 'connected', data: { phoneNumber: this.status().phoneNumber } }
    if (this.#state === 'pairing' && this.#lastPairing) return { status: 'pairing_code', data: this.#lastPairing }
    if (this.#state === 'qr' && this.#lastQr) return { status: 'qr', data: this.#lastQr }
    return undefined
  }

  start (): void {
    this.#open()
  }

  /** Ends the socket and every timer; no event of ours follows. */
  async stop (): Promise<void> {
    this.#stopping = true
    this.#state = 'stopped'
    clearTimeout(this.#timer)
    const socket = this.#socket
    this.#socket = undefined
    await socket?.end().catch((err: unknown) => this.#options.log.warn({ err }, 'socket end failed'))
  }

  touch (): void {
    this.#lastActivity = Date.now()
  }

  #open (): void {
    if (this.#stopping) return
    const { auth, factory, companyId, log } = this.#options
    this.#state = 'connecting'
    this.#unhealthySince ??= performance.now()
    const socket = factory({ companyId, auth: { creds: auth.creds, keys: auth.keys }, log })
    this.#socket = socket
    socket.on('connection', (update) => { void this.#onConnection(socket, update) })
    socket.on('creds', () => { void this.#saveCreds() })
    socket.on('messages', (messages) => this.#onMessages(messages))
    socket.on('receipts', (receipts) => this.#onReceipts(receipts))
    this.#options.onSocket?.(socket, this.#options.emit)
    socket.on('lids', (mappings) => {
      for (const { lid, phone } of mappings) {
        this.#options.contacts.learnLid(this.companyId, lid, userOfJid(phone))
          .catch((err: unknown) => this.#options.log.warn({ err, companyId: this.companyId }, 'a LID mapping was not stored'))
      }
    })
  }

  async #onConnection (socket: WaSocket, update: ConnectionUpdate): Promise<void> {
    if (this.#stopping || socket !== this.#socket) return
    const { emit, pairingPhone, auth } = this.#options
    if (update.qr) {
      if (pairingPhone && !auth.creds.me) {
        if (this.#pairingRequested) return
        this.#pairingRequested = true
        this.#state = 'pairing'
        try {
          const code = await socket.requestPairingCode(pairingPhone)
          this.#lastPairing = {
            code,
            phoneNumber: pairingPhone,
            expiresAt: new Date(Date.now() + this.#options.settings.pairingCodeTtlMs).toISOString()
          }
          emit('pairing_code', this.#lastPairing)
        } catch (err) {
          emit('error', { reason: 'pairing_code_failed', message: (err as Error).message })
        }
        return
      }
      this.#state = 'qr'
      const rendered = {
        qr: update.qr,
        qrDataUrl: await (await qrCodes()).toDataURL(update.qr),
        qrTerminal: await (await qrCodes()).toString(update.qr, { type: 'terminal', small: true })
      }
      // Rendering takes a while; a QR whose socket has gone meanwhile must not be shown.
      if (this.#stopping || socket !== this.#socket) return
      this.#qrCodes++
      this.#lastQr = rendered
      emit('qr', rendered)
      return
    }
    if (update.connection === 'open') {
      this.#state = 'open'
      // Linked: the rendered QR (its data URL and terminal text, about 13 KB) and the pairing code are
      // never shown again, a new link renders its own; kept, they were the largest part of a session of ours.
      this.#lastQr = undefined
      this.#lastPairing = undefined
      this.#unhealthySince = undefined
      this.#unhealthyReported = false
      this.#reconnectAttempts = 0
      this.#proxyFailures = 0
      this.touch()
      emit('connected', { phoneNumber: this.status().phoneNumber, isNewLogin: update.isNewLogin ?? false })
      return
    }
    if (update.connection === 'close') {
      if (update.proxyFailure) this.#onProxyFailure(update.proxyFailure)
      else this.#onClose(update.closeCode)
    }
  }

  /**
   * The company's proxy failed the connection: unreachable, or it refused the credentials. That is
   * the proxy's outage, not WhatsApp's answer, so it neither counts towards RECONNECT_MAX_ATTEMPTS
   * nor opens the breaker: the session tries again with backoff, capped at PROXY_RETRY_MAX_MS, until
   * the proxy answers or the company's proxy is changed (which reconnects it at once).
   */
  #onProxyFailure (failure: { kind: 'proxy_unreachable' | 'proxy_auth_failed', message: string }): void {
    const { settings, emit } = this.#options
    this.#socket = undefined
    const base = Math.min(settings.reconnectBaseMs * 2 ** this.#proxyFailures, PROXY_RETRY_MAX_MS)
    const delay = jittered(base)
    emit('error', { code: null, reason: failure.kind, message: failure.message, retryAt: new Date(Date.now() + delay).toISOString() })
    this.#proxyFailures++
    this.#state = 'reconnecting'
    this.#unhealthySince ??= performance.now()
    this.#schedule(delay)
  }

  #onClose (code: number | undefined): void {
    const { emit, auth, log } = this.#options
    this.#socket = undefined
    emit('disconnected', { code: code ?? null })
    if (code === CloseCode.restartRequired) {
      // After linking the server asks for a new socket with the same auth: normal, not a failure.
      this.#open()
      return
    }
    if (code === CloseCode.connectionReplaced) {
      emit('connection_replaced', { code })
      this.#end('connection_replaced')
      return
    }
    if (code === CloseCode.loggedOut) {
      void auth.wipe().catch((err: unknown) => log.error({ err }, 'wiping auth state after logout failed'))
        .finally(() => { emit('logout', { code }); this.#end('logged_out') })
      return
    }
    if (code === CloseCode.forbidden || code === CloseCode.multideviceMismatch) {
      emit('error', { code, reason: code === CloseCode.forbidden ? 'forbidden' : 'multidevice_mismatch' })
      this.#end('forbidden')
      return
    }
    if (code === CloseCode.timedOut && !auth.paired) {
      emit('error', { code, reason: 'qr_expired', message: 'no QR was scanned in time; initialize again' })
      this.#end('qr_expired')
      return
    }
    // 428, 408 (once paired), 503 and 500 are transient; so is any code Baileys does not name
    // (a stream error without a code arrives as 500, "unknown").
    this.#retry(code)
  }

  #retry (code: number | undefined): void {
    const { settings, emit } = this.#options
    const now = Date.now()
    this.#failures = [...this.#failures.filter((at) => now - at < settings.breakerWindowMs), now]
    if (this.#failures.length >= settings.breakerThreshold) {
      this.#failures = []
      this.#breakerOpenUntil = now + settings.breakerCooldownMs
      this.#state = 'breaker_open'
      this.#unhealthySince ??= performance.now()
      emit('error', { code: code ?? null, reason: 'circuit_open', retryAt: new Date(this.#breakerOpenUntil).toISOString() })
      this.#schedule(settings.breakerCooldownMs)
      return
    }
    if (this.#reconnectAttempts >= settings.reconnectMaxAttempts) {
      emit('reconnect_failed', { code: code ?? null, attempts: this.#reconnectAttempts })
      this.#end('reconnect_failed')
      return
    }
    const base = settings.reconnectBaseMs * 2 ** this.#reconnectAttempts
    const delay = jittered(base)
    this.#reconnectAttempts++
    this.#state = 'reconnecting'
    this.#unhealthySince ??= performance.now()
    this.#schedule(delay)
  }

  #schedule (delayMs: number): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#open(), delayMs)
  }

  #end (outcome: StopOutcome): void {
    void this.stop().then(() => this.#options.onOutcome(outcome))
  }

  async #saveCreds (): Promise<void> {
    try {
      await this.#options.auth.saveCreds()
    } catch (err) {
      if ((err as { code?: string }).code === 'FENCED') {
        this.#options.log.warn({ companyId: this.companyId }, 'a newer holder owns this company; stopping')
        this.#end('fenced')
        return
      }
      this.#options.log.error({ err, companyId: this.companyId }, 'saving creds failed')
    }
  }

  /**
   * Inbound messages are published one after another in the order WhatsApp delivered them; a media
   * message waits for its file to be in the media bucket, so its event can name it.
   */
  #onMessages (messages: InboundMessage[]): void {
    this.touch()
    this.#inbound = this.#inbound.then(() => this.#publishMessages(messages)).catch((err: unknown) => {
      this.#options.log.error({ err, companyId: this.companyId }, 'inbound messages could not be published')
    })
  }

  async #publishMessages (messages: InboundMessage[]): Promise<void> {
    for (const message of messages) {
      // Even once stopping: Baileys acknowledged the message to WhatsApp as it decrypted it, so no other
      // holder will receive it, and a message is a fact whatever its epoch (bench:chaos lost one this way).
      // In a group the writer is the participant; the chat is the group.
      const groupId = isGroupJid(message.from) ? message.from : undefined
      const writer = groupId ? message.participant ?? '' : message.from
      const writerAlt = groupId ? message.participantAlt : message.fromAlt
      const lid = writer.endsWith('@lid') ? writer : writerAlt?.endsWith('@lid') ? writerAlt : null
      const phoneJid = (writer.endsWith('@lid') ? writerAlt ?? await this.#phoneJidOf(writer) : writer) || null
      if (lid && phoneJid) {
        this.#options.contacts.learnLid(this.companyId, lid, userOfJid(phoneJid))
          .catch((err: unknown) => this.#options.log.warn({ err, companyId: this.companyId }, 'a LID mapping was not stored'))
      }
      const media = message.media ? await this.#fetchMedia(message) : undefined
      this.#options.log.debug({ companyId: this.companyId, messageId: message.id, offline: message.offline ?? false }, 'inbound message')
      this.#options.emit('message', {
        ...(media ? { media } : {}),
        ...(message.location ? { location: message.location } : {}),
        ...(message.contact ? { contact: message.contact } : {}),
        ...(message.quotedMessageId ? { quotedMessageId: message.quotedMessageId } : {}),
        ...(groupId ? { groupId } : {}),
        ...(message.mentions?.length ? { mentions: message.mentions } : {}),
        messageId: message.id,
        phone: phoneJid ? userOfJid(phoneJid) : null,
        jid: phoneJid,
        lid,
        pushName: message.pushName ?? null,
        text: message.text ?? null,
        timestamp: isoFromSeconds(message.timestamp),
        offline: message.offline ?? false
      }, { eventId: messageEventId(this.companyId, this.epoch, message.id) })
    }
  }

  /** A contact known by LID: the phone JID the history or the connection learned for it, if any. */
  async #phoneJidOf (lid: string): Promise<string | null> {
    const phone = await this.#options.contacts.phoneOfLid(this.companyId, lid).catch(() => undefined)
    if (phone) return `${phone}@s.whatsapp.net`
    return await this.#socket?.phoneOfLid(lid).catch(() => undefined) ?? null
  }

  /** Downloads a received file into the media bucket; one that cannot be had is described with why. */
  async #fetchMedia (message: InboundMessage): Promise<InboundMedia | UnavailableMedia> {
    const { saveMedia: save, log } = this.#options
    const socket = this.#stopping ? undefined : this.#socket
    return fetchInboundMedia({ companyId: this.companyId, messageId: message.id, ref: message.media!, socket, save, log })
  }

  /** Receipts move a message's delivery state forward; one that would move it back (or repeat it) is not an event. */
  #onReceipts (receipts: Receipt[]): void {
    for (const receipt of receipts) {
      const state = STATE_OF_RECEIPT[receipt.status]
      if (!advances(this.#states.get(receipt.id), state)) continue
      this.#states.set(receipt.id, state)
      const failure = state === 'failed' ? refusalOf(receipt.code) : undefined
      this.#options.emit('message_status', {
        messageId: receipt.id,
        to: receipt.to,
        status: receipt.status,
        state,
        ...(failure ? { failure } : {}),
        timestamp: isoFromSeconds(receipt.timestamp)
        // Without the epoch: every holder's copy of one receipt says the same, so whichever is stored first will do.
      }, { eventId: `status:${this.companyId}:${receipt.id}:${receipt.status}` })
    }
  }
}
