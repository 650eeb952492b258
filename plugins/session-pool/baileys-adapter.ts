import type { EventEmitter } from 'node:events'
import type { Agent as HttpsAgent } from 'node:https'
import type { Readable } from 'node:stream'
import makeWASocket, {
  Browsers, downloadMediaMessage, generateMessageIDV2, makeCacheableSignalKeyStore, proto, WA_CERT_DETAILS,
  type AnyMessageContent, type CacheStore, type MiscMessageGenerationOptions, type SignalKeyStore, type WAMessage, type WAVersion
} from '@whiskeysockets/baileys'
import { withDeadline } from '../../core/deadline.ts'
import { BoundedMap } from '../../core/bounded-map.ts'
import { settlesWithin } from '../../core/deadline.ts'
import { KeysNotStored, markingFailedWrites } from './baileys-keys.ts'
import { growRetryCachesLazily, sharedBaileysCaches } from './baileys-caches.ts'
import { detailsOf, mediaOf, textOf } from './baileys-content.ts'

/** The logger interface Baileys takes (`Utils/logger.d.ts`, not exported from the package root). */
export interface ILogger {
  level: string
  child: (bindings: Record<string, unknown>) => ILogger
  trace: (data: unknown, message?: string) => void
  debug: (data: unknown, message?: string) => void
  info: (data: unknown, message?: string) => void
  warn: (data: unknown, message?: string) => void
  error: (data: unknown, message?: string) => void
}
import type { FastifyBaseLogger } from 'fastify'
import {
  type InboundMessage, type OutboundContent, type OutboundFile, type Quoted, type Receipt, type SendOptions,
  type SocketEvents, type SocketFactory, type SocketOptions, type WaSocket
} from './socket-port.ts'
import {
  GroupAuthors, GroupMetadataCache, groupAuthorOf, groupPortOf, isGroupMessageFromPerson, mentionsOf, watchGroups
} from './baileys-groups.ts'
import type { BaileysArea } from './baileys-area.ts'
import { callPortOf } from './baileys-calls.ts'
import { chatPortOf } from './baileys-chats.ts'
import { pollPortOf } from './baileys-polls.ts'
import { profilePortOf } from './baileys-profiles.ts'
import { statusPortOf } from './baileys-status.ts'
import { HistoryNotices, historyPortOf } from './baileys-history.ts'
import { proxyFailureOf, type ProxyRoute } from '../../core/proxy.ts'

/** Keys kept in memory per company; the least recently used beyond this are read again from PostgreSQL. */
const KEY_CACHE_ENTRIES = 5_000

export interface BaileysSettings {
  /** Overrides Baileys' `waWebSocketUrl` (a compatible server, e.g. the simulator). */
  wsUrl?: string
  /** Pins the WhatsApp Web version, so start-up needs no network fetch. */
  version?: WAVersion
  /** Hex public key the server's certificate chain must be signed by (not WhatsApp's): never in production. */
  certPublicKeyHex?: string
  /** How long a download waits for the phone to upload a file again (Baileys' own wait has no end). */
  reuploadTimeoutMs?: number
  /** How long each QR code lives before the next (Baileys' default: 60 s, then 20 s). */
  qrRotateMs?: number
  /** How long end() waits for the closing handshake before it terminates the socket. */
  closeTimeoutMs: number
}

/**
 * Messages Baileys logs at warn or error level for events that are normal for the gateway: the 515
 * restart after every link, and the consequence of the history sync we turn off on purpose. They
 * are logged at debug level, so an operator's warnings mean something.
 */
/** Who the socket is: Baileys' own device, which rc14 tries to encrypt a group's sender key for in LID groups. */
export interface OwnDevice {
  lid: () => string | undefined
}

const EXPECTED_NOISE: { pattern: RegExp, when?: (data: unknown, own?: OwnDevice) => boolean }[] = [
  {
    pattern: /^stream errored out$/,
    when: (data) => (data as { fullErrorNode?: { attrs?: { code?: string } } })?.fullErrorNode?.attrs?.code === '515'
  },
  { pattern: /DISABLING ALL SYNC BY shouldSyncHistoryMsg/ },
  { pattern: /^no name present, ignoring presence update request/ },
  {
    // In LID groups rc14 lists the sending device among a group message's recipients and cannot
    // encrypt to itself (it has no session with itself); the message goes out to everyone else.
    pattern: /^Failed to encrypt for recipient$/,
    when: (data, own) => {
      const { jid, err } = (data ?? {}) as { jid?: string, err?: { message?: string } }
      const lid = own?.lid()
      return err?.message === 'No sessions' && lid !== undefined && jid?.split(':')[0] === lid.split(/[:@]/)[0]
    }
  }
]

/** Baileys' logger: a child of ours that turns the expected noise down to debug. */
export function baileysLogger (log: FastifyBaseLogger, own?: OwnDevice): ILogger {
  const expected = (data: unknown, message: unknown) => {
    const text = typeof message === 'string' ? message : typeof data === 'string' ? data : ''
    return EXPECTED_NOISE.some((noise) => noise.pattern.test(text) && (noise.when?.(data, own) ?? true))
  }
  const quiet = (level: 'warn' | 'error') => (data: unknown, message?: string) => {
    if (expected(data, message)) log.debug(data as object, message)
    else log[level](data as object, message)
  }
  return {
    get level () { return log.level },
    child: (bindings) => baileysLogger(log.child(bindings), own),
    trace: (data, message) => log.trace(data as object, message),
    debug: (data, message) => log.debug(data as object, message),
    info: (data, message) => log.info(data as object, message),
    warn: quiet('warn'),
    error: quiet('error')
  }
}

/** A bounded in-memory cache without timers: the default NodeCache keeps an interval alive per cache. */
class KeyCache implements CacheStore {
  readonly #entries = new BoundedMap<string, unknown>(KEY_CACHE_ENTRIES)
  get<T> (key: string): T | undefined {
    return this.#entries.get(key) as T | undefined
  }

  set<T> (key: string, value: T): void {
    this.#entries.set(key, value)
  }

  del (key: string): void { this.#entries.delete(key) }
  flushAll (): void { this.#entries.clear() }
}

/** A chat with a person (by phone number or LID), not a group, broadcast or newsletter. */
const PERSON_CHAT = /@(s\.whatsapp\.net|lid)$/
const GROUP_CHAT = /@g\.us$/

const STATUS: Record<number, Receipt['status']> = {
  [proto.WebMessageInfo.Status.ERROR]: 'error',
  [proto.WebMessageInfo.Status.SERVER_ACK]: 'server',
  [proto.WebMessageInfo.Status.DELIVERY_ACK]: 'delivered',
  [proto.WebMessageInfo.Status.READ]: 'read',
  [proto.WebMessageInfo.Status.PLAYED]: 'played'
}

/** Media messages kept per socket for their downloads (and a re-upload request, which needs the message). */
const RECENT_MEDIA_MESSAGES = 1_000

/** A file as Baileys' sendMessage takes it, streamed (Baileys encrypts it to a temporary file, then uploads). */
function contentOf (file: OutboundFile): AnyMessageContent {
  const source = { stream: file.stream }
  switch (file.kind) {
    case 'image': return { image: source, mimetype: file.mimetype, ...(file.caption ? { caption: file.caption } : {}) }
    case 'video': return { video: source, mimetype: file.mimetype, ...(file.caption ? { caption: file.caption } : {}) }
    case 'audio': return { audio: source, mimetype: file.mimetype, ptt: file.ptt === true }
    case 'sticker': return { sticker: source, mimetype: file.mimetype }
    case 'document': return {
      document: source, mimetype: file.mimetype, fileName: file.fileName ?? 'file', ...(file.caption ? { caption: file.caption } : {})
    }
  }
}

/** Baileys' `quoted`: the message replied to as WhatsApp shows it (its text, when known), by its key (with its author, in a group). */
function quotedOf (quoted: Quoted | undefined, keyOf: (id: string, fromMe: boolean) => WAMessage['key']) {
  if (!quoted) return undefined
  const message: WAMessage = { key: keyOf(quoted.id, quoted.fromMe), message: { conversation: quoted.text ?? '' } }
  return { quoted: message }
}

/** Mentions go into the content (Baileys puts them in its `contextInfo.mentionedJid`); a deletion mentions no one. */
function mentioning (content: AnyMessageContent, mentions: string[] | undefined): AnyMessageContent {
  return mentions?.length && !('delete' in content) ? { ...content, mentions } as AnyMessageContent : content
}

function baileysContentOf (jid: string, content: OutboundContent): AnyMessageContent {
  if ('location' in content) {
    const { latitude, longitude, name, address } = content.location
    return {
      location: {
        degreesLatitude: latitude,
        degreesLongitude: longitude,
        ...(name ? { name } : {}),
        ...(address ? { address } : {})
      }
    }
  }
  if ('contact' in content) {
    const { name, vcard } = content.contact
    return { contacts: { displayName: name, contacts: [{ displayName: name, vcard }] } }
  }
  if ('edit' in content) return { edit: { remoteJid: jid, id: content.edit.messageId, fromMe: true }, text: content.edit.text }
  return { delete: { remoteJid: jid, id: content.delete.messageId, fromMe: true } }
}

/** WhatsApp's media server no longer has the file: the phone must upload it again. */
function isGone (err: unknown): boolean {
  // Baileys 7.0.0-rc14 checks `error.status` for this, but its error carries `output.statusCode`.
  const status = (err as { output?: { statusCode?: number } } | undefined)?.output?.statusCode
  return status === 404 || status === 410
}

function closeCodeOf (error: unknown): number | undefined {
  return (error as { output?: { statusCode?: number } } | undefined)?.output?.statusCode
}

/**
 * The auth store's keys behind a bounded in-memory cache: made once per auth store (one per lease) and
 * reused by every socket of it. Made here, apart from the socket: the store keeps its logger, and a
 * closure made in the socket factory's scope keeps that whole scope, the first socket with it (its
 * WebSocket, caches and signal repository), for as long as the store lives. Every link's 515 restart
 * left one such dead socket per session (a heap snapshot at 100 sessions: 216 WebSocketClients).
 */
function cachedKeys (auth: SocketOptions['auth'], log: FastifyBaseLogger): SignalKeyStore {
  const logger = baileysLogger(log.child({ module: 'baileys' }), { lid: () => auth.creds.me?.lid })
  return makeCacheableSignalKeyStore(markingFailedWrites(auth.keys), logger as never, new KeyCache())
}

/**
 * The production socket: Baileys 7.0.0-rc14 behind the narrow port. One key cache per auth store
 * (one per lease), reused across reconnects; Baileys' logger is a child of ours.
 */
export function baileysFactory (settings: BaileysSettings): SocketFactory {
  if (settings.certPublicKeyHex) {
    // Baileys checks the server's certificate chain against this mutable, exported key.
    WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(settings.certPublicKeyHex, 'hex') as unknown as typeof WA_CERT_DETAILS.PUBLIC_KEY
  }
  const caches = new WeakMap<SignalKeyStore, SignalKeyStore>()
  const shared = sharedBaileysCaches()
  return (options: SocketOptions): WaSocket => {
    const logger = baileysLogger(options.log.child({ module: 'baileys' }), { lid: () => options.auth.creds.me?.lid })
    let keys = caches.get(options.auth.keys)
    if (!keys) {
      keys = cachedKeys(options.auth, options.log)
      caches.set(options.auth.keys, keys)
    }
    // Filled by the socket's own group queries and events; Baileys reads it before every group send.
    const groupMetadata = new GroupMetadataCache((groupJid) => sock.groupMetadata(groupJid))
    const history = new HistoryNotices(options.history ?? { mode: 'recent', days: null })
    const sock = makeWASocket({
      auth: { creds: options.auth.creds, keys },
      cachedGroupMetadata: async (groupJid) => groupMetadata.get(groupJid),
      ...shared.forSocket(),
      logger: logger as never,
      ...(settings.wsUrl ? { waWebSocketUrl: settings.wsUrl } : {}),
      ...(settings.version ? { version: settings.version } : {}),
      ...(settings.qrRotateMs ? { qrTimeout: settings.qrRotateMs } : {}),
      markOnlineOnConnect: false,
      // The gateway needs none of the optional queries after login (props, blocklist, privacy). Each
      // is also a 60 s timer that Baileys' end() leaves armed if no reply came (end() drops the
      // socket's close listeners first), which would outlive an ended session.
      fireInitQueries: false,
      // Asks WhatsApp for the whole history at registration (a link); the chunks are the history plugin's (baileys-history.ts).
      syncFullHistory: history.settings.mode === 'full',
      // WhatsApp gives the whole history only to a desktop companion.
      ...(history.settings.mode === 'full' ? { browser: Browsers.macOS('Desktop') } : {}),
      shouldSyncHistoryMessage: history.offer,
      // Every connection through the company's proxy: the WebSocket (agent), uploads (https.request with
      // fetchAgent) and every fetch (downloads, history blobs, app-state blobs: an undici dispatcher).
      ...(options.proxy
        ? {
            // The tunnelling agents (https-proxy-agent, socks-proxy-agent) serve https requests; Baileys types them as https Agents.
            agent: options.proxy.agent as HttpsAgent,
            fetchAgent: options.proxy.agent as HttpsAgent,
            options: { dispatcher: options.proxy.dispatcher } as RequestInit
          }
        : {}),
      // The auth store retries database failures itself and never a fenced write: Baileys' own ten
      // commit attempts 3 s apart would only hold a send's answer for half a minute.
      transactionOpts: { maxCommitRetries: 1, delayBetweenTriesMs: 0 },
      printQRInTerminal: false
    })
    growRetryCachesLazily(sock)
    if (options.writableUntil) refuseWritesAfter(sock, options.writableUntil, options.log)
    return adapt(sock, settings, options.log, groupMetadata, history, options.proxy)
  }
}

type RawSend = (data: unknown, cb?: (err?: Error) => void) => void

/**
 * Nothing reaches WhatsApp once the lease's deadline has passed. The fence closes the socket before
 * then, but its timer runs late when the event loop stalls, and by then another replica may have
 * logged in with the device: every frame Baileys writes goes through this check first, and the
 * first one too late cuts the socket. (A close's own frame goes out through the ws library, not
 * here; it carries no message and comes before the deadline when the fence runs on time.)
 */
function refuseWritesAfter (sock: ReturnType<typeof makeWASocket>, writableUntil: () => number, log: FastifyBaseLogger): void {
  const ws = (sock.ws as unknown as { socket?: { send: RawSend, terminate: () => void } | null }).socket
  if (!ws) return
  const send = ws.send.bind(ws)
  ws.send = (data, cb) => {
    if (performance.now() < writableUntil()) {
      send(data, cb)
      return
    }
    log.warn('the lease deadline has passed: the socket is cut off without writing')
    ws.terminate()
    cb?.(new Error('the lease deadline has passed'))
  }
}

function adapt (
  sock: ReturnType<typeof makeWASocket>, settings: BaileysSettings, log: FastifyBaseLogger, groupMetadata: GroupMetadataCache,
  history: HistoryNotices,
  proxy: ProxyRoute | undefined
): WaSocket {
  const reuploadTimeoutMs = settings.reuploadTimeoutMs ?? 30_000
  const recentMedia = new BoundedMap<string, WAMessage>(RECENT_MEDIA_MESSAGES)
  const groupAuthors = new GroupAuthors()
  const handlers: { [K in keyof SocketEvents]?: ((payload: SocketEvents[K]) => void)[] } = {}
  const emit = <K extends keyof SocketEvents>(event: K, payload: SocketEvents[K]) => {
    for (const handler of handlers[event] ?? []) handler(payload)
  }
  /** Upserted messages a feature area handles itself (baileys-area.ts): no contact's inbound message. */
  const claims: ((message: WAMessage) => boolean)[] = []
  const claimed = (message: WAMessage) => claims.some((owns) => owns(message))
  if (proxy) {
    // An HTTP proxy's refusal of the tunnel (407, or tinyproxy's 401 for a wrong password) reaches the
    // WebSocket through https-proxy-agent as the server's answer to the upgrade. Baileys listens for
    // 'unexpected-response' and does nothing with it, so the connection would hang until its connect
    // timeout: it ends here, with the answer as its error.
    (sock.ws as unknown as EventEmitter).on('unexpected-response', (_request: unknown, response: { statusCode?: number }) => {
      void sock.end(new Error(`Unexpected server response: ${response.statusCode ?? 'none'} (from the proxy)`))
    })
  }
  sock.ev.on('connection.update', (update) => {
    const closed = update.connection === 'close'
    // Through a proxy, a connection that failed before WhatsApp answered is the proxy's failure.
    const proxyFailure = closed && proxy ? proxyFailureOf(update.lastDisconnect?.error) : undefined
    emit('connection', {
      connection: update.connection,
      qr: update.qr,
      closeCode: closed ? closeCodeOf(update.lastDisconnect?.error) : undefined,
      isNewLogin: update.isNewLogin,
      ...(proxyFailure ? { proxyFailure: { kind: proxyFailure, message: String(update.lastDisconnect?.error?.message ?? '') } } : {})
    })
  })
  sock.ev.on('creds.update', () => emit('creds', sock.authState.creds))
  sock.ev.on('messages.upsert', ({ messages, type }) => {
    // Baileys holds a sent message back for 100 ms and folds a delivery receipt arriving in that
    // window into it, so a fast receipt reaches us only as the status of our own 'append'.
    const acknowledged: Receipt[] = messages
      .filter((message) => message.key.fromMe && message.key.id && message.status &&
        message.status >= proto.WebMessageInfo.Status.DELIVERY_ACK && STATUS[message.status])
      .map((message) => ({
        id: message.key.id!,
        to: message.key.remoteJid ?? '',
        status: STATUS[message.status!],
        timestamp: Math.floor(Date.now() / 1000)
      }))
    if (acknowledged.length > 0) emit('receipts', acknowledged)
    // Messages kept by WhatsApp while the device was offline (a failover, a restart) arrive as
    // 'append', like notifications and our own sends: contacts' real messages are taken from them too.
    const offline = type === 'append'
    if (type !== 'notify' && !offline) return
    // Group notifications arrive as stubs and protocol messages (baileys-groups.ts makes them group events).
    const inbound: InboundMessage[] = messages
      .filter((message) => !message.key.fromMe && message.key.remoteJid && message.key.id && !claimed(message))
      .filter((message) => GROUP_CHAT.test(message.key.remoteJid!)
        ? isGroupMessageFromPerson(message)
        : !offline || (message.message && !message.messageStubType && PERSON_CHAT.test(message.key.remoteJid!)))
      .map((message) => {
        const media = mediaOf(message.message)
        if (media) recentMedia.set(message.key.id!, message)
        groupAuthors.remember(message.key)
        return { message, media }
      })
      .map(({ message, media }) => ({
        ...(offline ? { offline: true } : {}),
        ...(media ? { media } : {}),
        ...detailsOf(message.message),
        ...groupAuthorOf(message.key),
        ...mentionsOf(message.message),
        id: message.key.id!,
        from: message.key.remoteJid!,
        fromAlt: message.key.remoteJidAlt ?? undefined,
        pushName: message.pushName ?? undefined,
        text: textOf(message.message),
        timestamp: Number(message.messageTimestamp ?? Math.floor(Date.now() / 1000))
      }))
    const received = messages.map((message) => message.key.id)
    log.debug({ type, received, inbound: inbound.map((message) => message.id) }, 'messages.upsert')
    if (inbound.length > 0) emit('messages', inbound)
  })
  sock.ev.on('messages.update', (updates) => {
    const receipts: Receipt[] = updates
      .filter((update) => update.update.status !== undefined && update.update.status !== null &&
        STATUS[update.update.status] && update.key.id)
      .map((update) => {
        // A refusal (an <ack error="463">) carries WhatsApp's code as the stub parameter.
        const code = update.update.status === proto.WebMessageInfo.Status.ERROR ? update.update.messageStubParameters?.[0] : undefined
        return {
          id: update.key.id!,
          to: update.key.remoteJid ?? '',
          status: STATUS[update.update.status!],
          timestamp: Math.floor(Date.now() / 1000),
          ...(code ? { code } : {})
        }
      })
    if (receipts.length > 0) emit('receipts', receipts)
  })
  sock.ev.on('lid-mapping.update', (mapping) => {
    const pairs = (Array.isArray(mapping) ? mapping : [mapping]) as { lid?: string, pn?: string }[]
    const lids = pairs.filter((pair) => pair.lid && pair.pn).map((pair) => ({ lid: pair.lid!, phone: pair.pn! }))
    if (lids.length > 0) emit('lids', lids)
  })
  sock.ev.on('messages.reaction', (reactions) => {
    emit('reactions', reactions.filter((reaction) => reaction.key.id).map((reaction) => ({
      messageId: reaction.key.id!,
      from: reaction.reaction.key?.participant ?? reaction.reaction.key?.remoteJid ?? reaction.key.remoteJid ?? '',
      emoji: reaction.reaction.text ?? '',
      timestamp: Number(reaction.reaction.senderTimestampMs ?? Date.now()) / 1000
    })))
  })

  const sent = (result: proto.IWebMessageInfo | undefined) => ({
    messageId: result?.key?.id ?? '',
    timestamp: Number(result?.messageTimestamp ?? Math.floor(Date.now() / 1000))
  })
  // Every send under an id chosen here: when its keys cannot be stored after it went out, it is still
  // reported as sent, under that id, so a retry with the same idempotency key does not send it twice.
  const send = async (jid: string, content: AnyMessageContent, options: MiscMessageGenerationOptions = {}) => {
    const messageId = options.messageId ?? generateMessageIDV2(sock.user?.id)
    try {
      return sent(await sock.sendMessage(jid, content, { ...options, messageId }))
    } catch (err) {
      if (!(err instanceof KeysNotStored)) throw err
      log.error({ err, messageId }, 'a message went out but its Signal keys were not stored (fenced, or the database failed)')
      return { messageId, timestamp: Math.floor(Date.now() / 1000) }
    }
  }
  watchGroups(sock, groupMetadata, (events) => emit('groups', events))
  const area: BaileysArea = {
    sock, log, emit, send, claim: (owns) => { claims.push(owns) }, rememberMedia: (message) => { recentMedia.set(message.key.id!, message) }
  }
  const sendWith = (jid: string, content: AnyMessageContent, options: SendOptions) =>
    send(jid, mentioning(content, options.mentions), {
      ...quotedOf(options.quoted, (id, fromMe) => groupAuthors.keyOf(jid, id, fromMe)),
      ...(options.messageId ? { messageId: options.messageId } : {})
    })
  return {
    on: (event, listener) => { (handlers[event] ??= [] as never[]).push(listener as never) },
    sendText: (jid, text, options = {}) => sendWith(jid, { text }, options),
    sendMedia: (jid, file, options = {}) => sendWith(jid, contentOf(file), options),
    sendContent: (jid, content, options = {}) => sendWith(jid, baileysContentOf(jid, content), options),
    downloadMedia: async (messageId) => {
      const message = recentMedia.get(messageId)
      if (!message) throw new Error(`message ${messageId} is not a recent media message of this connection`)
      const download = (from: WAMessage) =>
        downloadMediaMessage(from, 'stream', proxy ? { options: { dispatcher: proxy.dispatcher } as RequestInit } : {}) as Promise<Readable>
      try {
        return await download(message)
      } catch (err) {
        if (!isGone(err)) throw err
        // The re-uploaded file's URL is built on this socket's media host, known once it asked for one.
        await sock.refreshMediaConn(false)
        const updated = await withDeadline(sock.updateMediaMessage(message), reuploadTimeoutMs,
          () => new Error(`WhatsApp no longer has the file and the phone did not upload it again within ${reuploadTimeoutMs} ms`))
        recentMedia.set(messageId, updated)
        return await download(updated)
      }
    },
    react: (jid, key, emoji) => send(jid, { react: { text: emoji, key: groupAuthors.keyOf(jid, key.id, key.fromMe) } }),
    markRead: async (jid, ids) => { await sock.readMessages(ids.map((id) => groupAuthors.keyOf(jid, id, false))) },
    setPresence: async (presence, jid) => {
      // Baileys announces availability under the account's push name and skips it without one (until the
      // phone's app-state setting or a name set through the profile tells it): the number stands in for
      // this call only, so that the profile's name stays what WhatsApp told (null until then).
      const me = sock.authState.creds.me
      const standIn = me && !me.name && (presence === 'available' || presence === 'unavailable') ? me.id.split(/[:@]/)[0] : undefined
      if (me && standIn) me.name = standIn
      try {
        await sock.sendPresenceUpdate(presence, jid)
      } finally {
        if (me && standIn && me.name === standIn) delete me.name
      }
    },
    // Baileys leaves numbers that are not on WhatsApp out of its answer; ours names every number asked.
    onWhatsApp: async (jids) => {
      const found = new Set(((await sock.onWhatsApp(...jids)) ?? []).filter((entry) => entry.exists).map((entry) => entry.jid))
      return Promise.all(jids.map(async (jid) => {
        if (!found.has(jid)) return { jid, exists: false }
        const lid = await sock.signalRepository.lidMapping.getLIDForPN(jid).catch(() => null)
        return { jid, exists: true, ...(lid ? { lid: lid.replace(/:\d+@/, '@') } : {}) }
      }))
    },
    phoneOfLid: async (lid) => {
      const phone = await sock.signalRepository.lidMapping.getPNForLID(lid).catch(() => null)
      return phone ? phone.replace(/:\d+@/, '@') : undefined
    },
    requestPairingCode: (phoneDigits) => sock.requestPairingCode(phoneDigits),
    // Baileys' end() destroys its event emitter (every listener) itself; our handlers go with the closure.
    // The connection counts as closed only once its WebSocket is: the lease is released after this,
    // and WhatsApp answers a new login while the old one is still open with 440 (replaced). A peer
    // that does not finish the closing handshake in time gets the socket terminated.
    end: async () => {
      for (const key of Object.keys(handlers) as (keyof SocketEvents)[]) delete handlers[key]
      if (!await settlesWithin(sock.end(undefined), settings.closeTimeoutMs)) {
        (sock.ws as unknown as { socket?: { terminate: () => void } | null }).socket?.terminate()
      }
    },
    logout: () => sock.logout(),
    groups: groupPortOf(sock, groupMetadata),
    polls: pollPortOf(area),
    calls: callPortOf(area),
    profiles: profilePortOf(area),
    chats: chatPortOf(area),
    status: statusPortOf(area),
    history: historyPortOf(area, history, { standIn: settings.wsUrl !== undefined, ...(proxy ? { dispatcher: proxy.dispatcher } : {}) })
  }
}
