import { createHash, randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  ANY_REPLICA_QUEUE, CompanyParams, CONTROL_SCOPES, EmptyRequest, ErrorCode, MAX_SCHEDULE_AHEAD_DAYS, MAX_SCHEDULE_KEY_LENGTH,
  QuietHours, QuietHoursReply, ScheduledListQuery, ScheduledListReply, ScheduledMessageReply, ScheduledRef, ScheduledReply,
  ScheduleRequest, type SchedulableCommand
} from '../../contracts/index.ts'
import { BoundedMap } from '../../core/bounded-map.ts'
import { GatewayError } from '../../core/errors.ts'
import { errorAnswer } from '../../core/plugins/docs.ts'
import type { ScheduleSend } from '../session-pool/index.ts'
import { Dispatcher } from './dispatcher.ts'
import { nextAllowed, quietHoursOf, type AllowedHours } from './quiet-hours.ts'
import type { SchedulerOptions } from './settings.ts'
import { iso, schedulerMigrations, SchedulerStore, viewOf } from './store.ts'

export { settings, type SchedulerOptions } from './settings.ts'
export { derivedMessageId, failureOf, retryDelayOf, type SendFailure } from './outcomes.ts'
export { isAllowed, nextAllowed, type AllowedHours } from './quiet-hours.ts'
export const migrations = schedulerMigrations

/** The scheduler plugin's public face. */
export interface Scheduler {
  /** The hours the company may message customers (cached for a few seconds); undefined: any time. */
  allowedHours: (companyId: string) => Promise<AllowedHours | undefined>
  /** Looks for due messages now instead of at the next poll (tests). */
  look: () => Promise<void>
  /** Resolves once no scheduled message is being sent here (tests, benchmarks). */
  settled: () => Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    scheduler: Scheduler
  }
}

const TAGS = ['scheduled']
const BASE = '/api/whatsapp/sessions/:companyId'
const DAY_MS = 24 * 60 * 60 * 1000
/** Quiet hours set on another replica reach this one's dispatcher within this long. */
const QUIET_HOURS_CACHE_MS = 5_000
const QUIET_HOURS_KEPT = 10_000

type ScheduledFields = Record<string, unknown> & {
  phone: string, sendAt: string, scheduleKey?: string, expiresAt?: string, quietHours?: 'respect' | 'ignore', idempotencyKey?: string
}

/** An idempotency key names one scheduled message: a repeat of the request finds it instead of scheduling another. */
function idOfKey (companyId: string, idempotencyKey: string): string {
  const hex = createHash('sha256').update(`${companyId}\n${idempotencyKey}`).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

function timeOf (value: string, field: string): number {
  const time = Date.parse(value)
  if (Number.isNaN(time)) {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, `${field} is not a time`, {
      details: [{ field: `/${field}`, message: 'ISO 8601 with its offset' }]
    })
  }
  return time
}

/**
 * Scheduled messages: any schedulable send with `sendAt` is stored (on whichever replica it reaches)
 * and answered 202; the company's holder sends it once, on time, through the same command a client's
 * send takes. Quiet hours hold scheduled (and campaign) messages to the company's allowed hours.
 */
export default fp<SchedulerOptions>(async (app, options) => {
  // SQL of its own only: the root EntityManager's connection serves it.
  const store = new SchedulerStore(() => app.orm.em)
  const hoursCache = new BoundedMap<string, { hours: AllowedHours | undefined, at: number }>(QUIET_HOURS_KEPT)

  const allowedHours = async (companyId: string): Promise<AllowedHours | undefined> => {
    const cached = hoursCache.get(companyId)
    if (cached && Date.now() - cached.at < QUIET_HOURS_CACHE_MS) return cached.hours
    const hours = await store.quietHours(companyId)
    hoursCache.set(companyId, { hours, at: Date.now() })
    return hours
  }

  const schedule: ScheduleSend = async (companyId, command, request) => {
    const { sendAt, scheduleKey, expiresAt, quietHours = 'respect', idempotencyKey, ...send } = request as ScheduledFields
    const sendTime = timeOf(sendAt, 'sendAt')
    if (sendTime > Date.now() + MAX_SCHEDULE_AHEAD_DAYS * DAY_MS) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, `sendAt is more than ${MAX_SCHEDULE_AHEAD_DAYS} days ahead`, {
        details: [{ field: '/sendAt', message: `within ${MAX_SCHEDULE_AHEAD_DAYS} days` }]
      })
    }
    // The file waits in the media bucket, which keeps it for MEDIA_RETENTION: a send later than that would find it gone.
    if (send.media !== undefined && sendTime > Date.now() + app.media.retentionMs) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'a file is kept for MEDIA_RETENTION, and sendAt is later than that', {
        details: [{ field: '/sendAt', message: `within ${Math.floor(app.media.retentionMs / 3_600_000)} h for a file` }]
      })
    }
    const expiry = expiresAt === undefined ? null : timeOf(expiresAt, 'expiresAt')
    if (expiry !== null && expiry <= sendTime) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'expiresAt is not after sendAt', {
        details: [{ field: '/expiresAt', message: 'after sendAt' }]
      })
    }
    // A phone is checked now (a JID when the chat is resolved, at sending): a typo fails the request, not the reminder.
    if (!send.phone.includes('@')) app.phone.normalize(send.phone)
    const hours = quietHours === 'respect' ? await allowedHours(companyId) : undefined
    const dueTime = hours ? nextAllowed(hours, sendTime) : sendTime
    const id = idempotencyKey === undefined ? randomUUID() : idOfKey(companyId, idempotencyKey)
    const answer = (key: string | null, sendAt: Date | string, dueAt: Date | string, expiresAt: Date | string | null,
      replaced: string | null): ScheduledReply => ({
      success: true,
      companyId,
      id,
      scheduleKey: key,
      state: 'scheduled',
      sendAt: iso(sendAt),
      dueAt: iso(dueAt),
      expiresAt: expiresAt === null ? null : iso(expiresAt),
      replaced
    })
    if (idempotencyKey !== undefined) {
      const earlier = await store.get(companyId, id)
      if (earlier) return answer(earlier.schedule_key, earlier.send_at, earlier.due_at, earlier.expires_at, null)
    }
    // A key's replacement keeps the count; anything else must fit under the company's limit.
    if (scheduleKey === undefined && await store.pending(companyId) >= options.scheduledMaxPending) {
      throw new GatewayError(ErrorCode.LIMIT_REACHED,
        `company ${companyId} has ${options.scheduledMaxPending} messages scheduled (SCHEDULED_MAX_PENDING); cancel some or wait`)
    }
    const scheduled = {
      id,
      companyId,
      scheduleKey: scheduleKey ?? null,
      command,
      phone: send.phone,
      request: send,
      sendAt: new Date(sendTime),
      dueAt: new Date(dueTime),
      expiresAt: expiry === null ? null : new Date(expiry),
      quietHours
    }
    const { replaced } = await store.add(scheduled)
    const reply = answer(scheduled.scheduleKey, scheduled.sendAt, scheduled.dueAt, scheduled.expiresAt, replaced)
    const { sendAt: at, dueAt, expiresAt: until } = reply
    app.events.publish(companyId, 'message_scheduled', {
      id, scheduleKey: reply.scheduleKey, phone: send.phone, command, sendAt: at, dueAt, expiresAt: until, replaced
    }, { epoch: 0, id: `scheduled:${id}` })
    return reply
  }
  app.holderCommands.useScheduler(schedule)

  const dispatcher = new Dispatcher({
    store,
    pollMs: options.schedulerPollMs,
    maxAttempts: options.scheduledMaxAttempts,
    holdsAny: () => app.holderCommands.holdsAny(),
    readyLease: (companyId) => app.holderCommands.readyLease(companyId),
    stillHeld: (companyId, epoch) => app.holderCommands.holds(companyId, epoch),
    send: (row, lease, messageId) => app.holderCommands.run<{ messageId: string }>(row.command, {
      companyId: row.company_id,
      request: row.request,
      lease,
      idempotencyKey: undefined,
      messageId,
      sentFor: { scheduled: { id: row.id, scheduleKey: row.schedule_key } }
    }),
    allowedHours,
    publish: (companyId, type, data, epoch) => { app.events.publish(companyId, type, data, { epoch }) },
    log: app.log
  })

  const scheduleFromNats = async (companyId: string, command: SchedulableCommand, request: Record<string, unknown>) => {
    if (typeof request.sendAt !== 'string') {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'a send to schedule needs sendAt', {
        details: [{ field: '/request/sendAt', message: 'required' }]
      })
    }
    const prepared = await app.holderCommands.prepare(command, companyId, request) as Record<string, unknown>
    return schedule(companyId, command, prepared)
  }
  const list = async (companyId: string, query: ScheduledListQuery): Promise<ScheduledListReply> => {
    const { rows, next } = await store.list(companyId, query)
    return { success: true, companyId, scheduled: rows.map(viewOf), next }
  }
  const getOne = async (companyId: string, key: string): Promise<ScheduledMessageReply> => {
    const row = await store.get(companyId, key)
    if (!row) throw new GatewayError(ErrorCode.NOT_FOUND, `no message scheduled with key or id ${key}`)
    return { success: true, companyId, scheduled: viewOf(row) }
  }
  const cancel = async (companyId: string, key: string): Promise<ScheduledMessageReply> => {
    const cancelled = await store.cancel(companyId, key)
    if (cancelled) return { success: true, companyId, scheduled: viewOf(cancelled) }
    const row = await store.get(companyId, key)
    if (!row) throw new GatewayError(ErrorCode.NOT_FOUND, `no message scheduled with key or id ${key}`)
    throw new GatewayError(ErrorCode.IN_PROGRESS,
      `the message scheduled with key or id ${key} is ${row.status}; only a scheduled one can be cancelled`)
  }
  const hoursReply = async (companyId: string): Promise<QuietHoursReply> => {
    const hours = await store.quietHours(companyId)
    return { success: true, companyId, quietHours: hours ? quietHoursOf(hours) : null }
  }
  const setHours = async (companyId: string, hours: QuietHours): Promise<QuietHoursReply> => {
    const stored = await store.setQuietHours(companyId, hours)
    hoursCache.delete(companyId)
    await store.undefer(companyId)
    return { success: true, companyId, quietHours: stored }
  }
  const removeHours = async (companyId: string): Promise<QuietHoursReply> => {
    await store.removeQuietHours(companyId)
    hoursCache.delete(companyId)
    await store.undefer(companyId)
    return { success: true, companyId, quietHours: null }
  }

  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const KeyParams = Type.Object({
    companyId: CompanyParams.properties.companyId,
    key: Type.String({ minLength: 1, maxLength: MAX_SCHEDULE_KEY_LENGTH, description: 'A scheduleKey, or the id the 202 answer gave' })
  })
  routes.get(`${BASE}/scheduled`, {
    config: { access: { scope: CONTROL_SCOPES['scheduled.list'], company: 'params' } },
    schema: {
      operationId: 'scheduledMessages',
      tags: TAGS,
      summary: 'The company\'s scheduled messages by due time, of one state (`status`) or all, due before a time (`before`)',
      params: CompanyParams,
      querystring: ScheduledListQuery,
      response: { 200: ScheduledListReply }
    }
  }, (request) => list(request.params.companyId, request.query))
  routes.get(`${BASE}/scheduled/:key`, {
    config: { access: { scope: CONTROL_SCOPES['scheduled.get'], company: 'params' } },
    schema: {
      operationId: 'scheduledMessage',
      tags: TAGS,
      summary: 'One scheduled message by its key (the pending one, else the latest) or id, with its state and outcome',
      params: KeyParams,
      response: { 200: ScheduledMessageReply }
    }
  }, (request) => getOne(request.params.companyId, request.params.key))
  routes.delete(`${BASE}/scheduled/:key`, {
    config: { access: { scope: CONTROL_SCOPES['scheduled.cancel'], company: 'params' } },
    schema: {
      operationId: 'cancelScheduled',
      tags: TAGS,
      summary: 'Cancel the pending message scheduled with this key (or id); one being sent or already sent is 409',
      params: KeyParams,
      response: {
        200: ScheduledMessageReply,
        409: errorAnswer('The message is being sent, was sent, or is no longer pending (`IN_PROGRESS`)')
      }
    }
  }, (request) => cancel(request.params.companyId, request.params.key))
  routes.get(`${BASE}/quiet-hours`, {
    config: { access: { scope: CONTROL_SCOPES['quiet-hours.get'], company: 'params' } },
    schema: {
      operationId: 'quietHours',
      tags: TAGS,
      summary: 'The hours the company may message customers (scheduled and campaign messages wait for them); null: any time',
      params: CompanyParams,
      response: { 200: QuietHoursReply }
    }
  }, (request) => hoursReply(request.params.companyId))
  routes.put(`${BASE}/quiet-hours`, {
    config: { access: { scope: CONTROL_SCOPES['quiet-hours.set'], company: 'params' } },
    schema: {
      operationId: 'setQuietHours',
      tags: TAGS,
      summary: 'Set the hours the company may message customers, in its time zone (e.g. 09:00-21:00 Europe/Moscow)',
      params: CompanyParams,
      body: QuietHours,
      response: { 200: QuietHoursReply }
    }
  }, (request) => setHours(request.params.companyId, request.body))
  routes.delete(`${BASE}/quiet-hours`, {
    config: { access: { scope: CONTROL_SCOPES['quiet-hours.delete'], company: 'params' } },
    schema: {
      operationId: 'removeQuietHours',
      tags: TAGS,
      summary: 'Let scheduled and campaign messages go at any time',
      params: CompanyParams,
      response: { 200: QuietHoursReply }
    }
  }, (request) => removeHours(request.params.companyId))

  const { subjects } = app
  const handlers = [
    app.bus.handle(subjects.scheduled('*', 'create'), { request: ScheduleRequest, reply: ScheduledReply, queue: ANY_REPLICA_QUEUE },
      (request, context) => scheduleFromNats(context.companyId, request.command, request.request)),
    app.bus.handle(subjects.scheduled('*', 'list'), { request: ScheduledListQuery, reply: ScheduledListReply, queue: ANY_REPLICA_QUEUE },
      (request, context) => list(context.companyId, request)),
    app.bus.handle(subjects.scheduled('*', 'get'), { request: ScheduledRef, reply: ScheduledMessageReply, queue: ANY_REPLICA_QUEUE },
      (request, context) => getOne(context.companyId, request.key)),
    app.bus.handle(subjects.scheduled('*', 'cancel'), { request: ScheduledRef, reply: ScheduledMessageReply, queue: ANY_REPLICA_QUEUE },
      (request, context) => cancel(context.companyId, request.key)),
    app.bus.handle(subjects.quietHours('*', 'get'), { request: EmptyRequest, reply: QuietHoursReply, queue: ANY_REPLICA_QUEUE },
      (_request, context) => hoursReply(context.companyId)),
    app.bus.handle(subjects.quietHours('*', 'set'), { request: QuietHours, reply: QuietHoursReply, queue: ANY_REPLICA_QUEUE },
      (request, context) => setHours(context.companyId, request)),
    app.bus.handle(subjects.quietHours('*', 'delete'), { request: EmptyRequest, reply: QuietHoursReply, queue: ANY_REPLICA_QUEUE },
      (_request, context) => removeHours(context.companyId))
  ]

  app.decorate('scheduler', {
    allowedHours,
    look: () => dispatcher.look(),
    settled: () => dispatcher.settled()
  } satisfies Scheduler)

  app.addHook('onReady', async () => { dispatcher.start() })
  // Before the sessions close: a message being sent finishes (or is left to the next holder) while the connection is up.
  app.addHook('preClose', async () => { await dispatcher.stop() })
  app.addHook('onClose', async () => { await Promise.all(handlers.map((handler) => handler.close())) })
}, { name: 'scheduler', dependencies: ['config', 'bus', 'db', 'events', 'phone', 'media', 'ownership', 'session-pool'] })
