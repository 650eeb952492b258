import fp from 'fastify-plugin'
import { authMigrations, WhatsappAuthSchema, WhatsappKeySchema } from './auth-store.ts'
import { pairingMigrations } from './pairing.ts'
import { linkSettingsMigrations } from './link-settings.ts'
import { SessionPool } from './pool.ts'
import type { StopOutcome } from './session.ts'
import { TestWhatsApp } from './test-socket.ts'
import type { SocketFactory } from './socket-port.ts'
import { IDEMPOTENCY_TTL_MS, IdempotencyStore } from './idempotency.ts'
import { Outbound } from './outbound.ts'
import { HolderCommands } from './holder-command.ts'
import { isoFromSeconds } from '../../core/time.ts'
import { StreamPublisher } from '../../core/nats/stream-publisher.ts'
import { declareSessionCommands } from './commands.ts'
import { registerSessionControl } from './control.ts'
import type { SessionPoolOptions } from './settings.ts'
import { resealAll } from './sealing.ts'

// The public face: what other plugins may use of the session pool.
export {
  declareHolderCommand, idempotencyHeaders, type HolderCall, type HolderCommand, type HolderCommands, type ScheduleSend
} from './holder-command.ts'
export { chatOf, memberJidOf, type Chat } from './chat.ts'
export { fetchInboundMedia } from './inbound-media.ts'
export { STATUS_BROADCAST, type InboundStatus, type OutboundStatus, type PostedStatus } from './status-port.ts'
export { deliveryFields, type OutboundItem, type OutboundKind, type OutboundPolicy } from './outbound.ts'
export type { SessionPool, SocketListener, StatusParts } from './pool.ts'
export type {
  HistoryAnchor, HistoryChat, HistoryChunk, HistoryContact, HistoryMessage, HistoryNotice, HistoryPort, HistorySettings, StoredMediaRef
} from './history-port.ts'
export type { Session, SessionState } from './session.ts'
export type { GroupEvent, GroupMeta, GroupMember, GroupMemberResult, WaSocket, SentMessage } from './socket-port.ts'
export type { ChatChange, ChatEvent, ChatPort, LastMessageRef } from './chats-port.ts'
export { WhatsAppRefusal } from './socket-port.ts'
export type { AboutText, BlocklistEvent, BusinessProfile, PictureChange, PictureQuality, ProfilePort } from './profiles-port.ts'
export type { CallEvent, CallPort } from './calls-port.ts'
export { settings, type SessionPoolOptions } from './settings.ts'
export { resealAll } from './sealing.ts'
export type { InboundPollVote, OutboundPoll, PollPort, SentPoll } from './polls-port.ts'

export const entities = [WhatsappAuthSchema, WhatsappKeySchema]
export const migrations = [...authMigrations, ...pairingMigrations, ...linkSettingsMigrations]

/** Health is looked at this often relative to the threshold, so a report comes at most a quarter late. */
const HEALTH_CHECKS_PER_THRESHOLD = 4
const HEALTH_CHECK_MIN_INTERVAL_MS = 250

declare module 'fastify' {
  interface FastifyInstance {
    sessionPool: SessionPool
    /** The one way a message leaves a company's connection (idempotency, policies, deadline). */
    outbound: Outbound
    /** With WA_TRANSPORT=test: the in-process WhatsApp the sessions connect to. */
    testWhatsApp: TestWhatsApp | undefined
    /** Every holder command declared: run in-process on the holder, and where scheduled sends go. */
    holderCommands: HolderCommands
  }
}

/** Outcomes after which no replica should try the company again until someone initializes it. */
const FINAL_OUTCOMES = new Set<StopOutcome>(['connection_replaced', 'logged_out', 'forbidden', 'qr_expired', 'reconnect_failed'])

/**
 * The WhatsApp connections this replica holds (one per company it holds the lease of), the one
 * outbound path, the connection's commands and the operations any replica answers.
 */
export default fp<SessionPoolOptions>(async (app, options) => {
  const { config, ownership, events } = app
  app.decorate('holderCommands', new HolderCommands({
    holdsAny: () => ownership.holdsAny(),
    leaseOf: (companyId) => ownership.leaseOf(companyId),
    isOpen: (companyId) => app.sessionPool.get(companyId)?.state === 'open'
  }))

  const testWhatsApp = options.waTransport === 'test'
    ? new TestWhatsApp(ownership.testLedger, { closeTimeoutMs: options.waCloseTimeoutMs })
    : undefined
  // Baileys is loaded when the first session starts (see baileys.ts), with the adapter around it.
  const testSockets = testWhatsApp?.factory(config.replicaId)
  let baileysSockets: Promise<SocketFactory> | undefined
  const loadFactory = async (): Promise<SocketFactory> => testSockets ??
    await (baileysSockets ??= import('./baileys-adapter.ts').then(({ baileysFactory }) => baileysFactory({
      wsUrl: options.waWsUrl,
      version: options.waVersion,
      certPublicKeyHex: options.waCertPublicKey,
      reuploadTimeoutMs: options.mediaReuploadTimeoutMs,
      qrRotateMs: options.qrRotateMs,
      closeTimeoutMs: options.waCloseTimeoutMs
    })))
  app.decorate('testWhatsApp', testWhatsApp)

  // Baileys' creds and keys are sealed at rest; rows stored before (or under an older key) are sealed now.
  const { sealer } = app
  const resealed = await resealAll(() => app.orm.em.fork(), sealer)
  if (resealed > 0) app.log.info({ resealed, keyId: sealer.currentKeyId }, 'sealed stored auth state under the current key')

  const pool = new SessionPool({
    settings: options,
    sealer,
    loadFactory,
    em: () => app.orm.em.fork(),
    log: app.log,
    events,
    media: app.media,
    contacts: app.conversations,
    proxyOf: (companyId) => app.proxies.routeOf(companyId),
    onOutcome: (companyId, outcome) => {
      if (!FINAL_OUTCOMES.has(outcome)) return
      ownership.setDesired(companyId, 'offline')
        .catch((err: unknown) => app.log.error({ err, companyId }, 'could not mark the company offline'))
    }
  })
  app.decorate('sessionPool', pool)
  // A company's proxy changed (on any replica): its connection reconnects through the new route, under the same lease.
  app.proxies.onChange((companyId) => {
    if (!pool.get(companyId)) return
    pool.restart(companyId).catch((err: unknown) => app.log.error({ err, companyId }, 'could not reconnect through the new proxy'))
  })
  if (options.waWsUrl) app.proxies.useEndpoint(options.waWsUrl)
  ownership.useConnector(pool)
  const idempotencyKv = await app.openKv(options.idempotencyBucket, { ttlMs: IDEMPOTENCY_TTL_MS, timeoutMs: config.natsRequestTimeoutMs })
  // It lives as long as its connection: the sessions a shutdown stops (after this plugin's onClose) still record their sends.
  const idempotencyWrites = new StreamPublisher(app.nats, config.natsRequestTimeoutMs)
  void app.nats.closed().then(() => { idempotencyWrites.close() })
  app.decorate('outbound', new Outbound({
    pool,
    idempotency: new IdempotencyStore(idempotencyKv, idempotencyWrites, config.replicaId, app.log),
    sendTimeoutMs: options.sendTimeoutMs,
    log: app.log
  }))

  // Every message WhatsApp took is an event too (in the sender's trace): other services see sends they did not make.
  app.outbound.onOutcome((item, outcome) => {
    if (outcome.error !== undefined || !outcome.sent) return
    // A status post is in no chat: its reply tells the caller, and the history keeps no chat named status@broadcast.
    if (item.kind === 'status') return
    events.publish(item.companyId, 'message_sent', {
      messageId: outcome.sent.messageId,
      phone: item.recipient,
      kind: item.kind,
      timestamp: isoFromSeconds(outcome.sent.timestamp),
      ...item.details
    }, { epoch: item.epoch, id: `sent:${item.companyId}:${outcome.sent.messageId}` })
  })

  // Passive health: reports sessions that stay unhealthy; never reconnects anything.
  const healthIntervalMs = Math.max(HEALTH_CHECK_MIN_INTERVAL_MS, options.healthFailedAfterMs / HEALTH_CHECKS_PER_THRESHOLD)
  const healthTimer = setInterval(() => {
    for (const session of pool.all()) session.checkHealth(options.healthFailedAfterMs)
  }, healthIntervalMs)
  healthTimer.unref()
  app.addHook('onClose', async () => { clearInterval(healthTimer) })

  declareSessionCommands(app, pool)
  registerSessionControl(app, options)
}, {
  name: 'session-pool',
  dependencies: ['config', 'bus', 'db', 'events', 'sealing', 'phone', 'ownership', 'media', 'conversations', 'proxy']
})
