import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

/** How far ahead a message may be scheduled. */
export const MAX_SCHEDULE_AHEAD_DAYS = 366
export const MAX_SCHEDULE_KEY_LENGTH = 200
/** A key names a scheduled message in a URL path too: characters that need no escaping there. */
export const SCHEDULE_KEY_PATTERN = `^[A-Za-z0-9_.:@-]{1,${MAX_SCHEDULE_KEY_LENGTH}}$`

/** An ISO 8601 time that says its offset (`Z` or `±hh:mm`): a time without one means something else in every zone. */
export const ZonedTime = (description: string) => Type.String({
  format: 'date-time',
  pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})$',
  description: `${description} (ISO 8601 with its offset, e.g. 2026-12-08T15:00:00+03:00)`
})

export const ScheduleKey = Type.String({
  pattern: SCHEDULE_KEY_PATTERN,
  description: 'The caller\'s name for a scheduled message (e.g. booking-1234-reminder): scheduling again with it replaces' +
    ' the one still pending, and DELETE …/scheduled/{key} cancels it'
})

export const QuietHoursChoice = Type.Union([Type.Literal('respect'), Type.Literal('ignore')], {
  description: '`respect` (default): outside the company\'s allowed hours it waits for the next allowed minute; `ignore`: it goes on time'
})

/** What any schedulable send (a message, a poll) takes besides its own fields. */
export const ScheduleFields = {
  sendAt: Type.Optional(ZonedTime('Send at this time instead of now: the answer is 202 with the scheduled message\'s id')),
  scheduleKey: Type.Optional(ScheduleKey),
  expiresAt: Type.Optional(ZonedTime('With sendAt: not sent after this time (its state becomes `expired`)')),
  quietHours: Type.Optional(QuietHoursChoice)
}

export const SCHEDULED_STATES = ['scheduled', 'sending', 'sent', 'failed', 'expired', 'cancelled', 'replaced'] as const
export type ScheduledState = (typeof SCHEDULED_STATES)[number]
export const ScheduledStateSchema = Type.Union([
  Type.Literal('scheduled'), Type.Literal('sending'), Type.Literal('sent'), Type.Literal('failed'), Type.Literal('expired'),
  Type.Literal('cancelled'), Type.Literal('replaced')
], {
  description: '`scheduled` → `sending` → `sent` | `failed`; or `expired` (past expiresAt), `cancelled`, `replaced` (by its key)'
})

/** The sends that take `sendAt`: the holder command each one is. */
export const SchedulableCommandSchema = Type.Union([Type.Literal('send'), Type.Literal('poll-send')], {
  description: '`send` (a text, file, location or contact) or `poll-send`'
})
export type SchedulableCommand = Static<typeof SchedulableCommandSchema>

const Failure = Type.Object({ code: Type.String(), message: Type.String() })

export const ScheduledMessage = Type.Object({
  id: Type.String({ description: 'The scheduled message\'s id (also its idempotency key: it is sent once)' }),
  scheduleKey: Type.Union([ScheduleKey, Type.Null()]),
  command: SchedulableCommandSchema,
  phone: Type.String({ description: 'The chat, as the send named it' }),
  status: ScheduledStateSchema,
  sendAt: Type.String({ format: 'date-time', description: 'The time asked for' }),
  dueAt: Type.String({ format: 'date-time', description: 'When it goes: sendAt, or the next allowed minute under quiet hours' }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  quietHours: QuietHoursChoice,
  attempts: Type.Integer({ minimum: 0 }),
  messageId: Type.Union([Type.String(), Type.Null()], { description: 'WhatsApp\'s id, once sent' }),
  sentAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  error: Type.Union([Failure, Type.Null()], { description: 'Why it failed or was last retried' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  request: Type.Record(Type.String(), Type.Unknown(), { description: 'The send as it will go (its schedule fields left out)' })
})
export type ScheduledMessage = Static<typeof ScheduledMessage>

/** The 202 answer of a send with `sendAt`. */
export const ScheduledReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  id: Type.String(),
  scheduleKey: Type.Union([ScheduleKey, Type.Null()]),
  state: Type.Literal('scheduled'),
  sendAt: Type.String({ format: 'date-time' }),
  dueAt: Type.String({ format: 'date-time', description: 'When it goes (later than sendAt when quiet hours hold it)' }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  replaced: Type.Union([Type.String(), Type.Null()], { description: 'The id of the pending message with the same key it replaced' })
}, { description: 'The message is scheduled; its outcome comes as `message_sent`, `message_failed` or `message_expired` events' })
export type ScheduledReply = Static<typeof ScheduledReply>

export const ScheduledListQuery = Type.Object({
  status: Type.Optional(ScheduledStateSchema),
  order: Type.Optional(Type.Union([Type.Literal('due'), Type.Literal('recent')], {
    description: '`due` (default): earliest due first; `recent`: the latest change first (what just went, failed or was cancelled)'
  })),
  before: Type.Optional(ZonedTime('Only those due before this time')),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Per page (default 100)' })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'The `next` of the previous page' }))
}, { additionalProperties: false })
export type ScheduledListQuery = Static<typeof ScheduledListQuery>

export const ScheduledListReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  scheduled: Type.Array(ScheduledMessage, { description: 'By due time, earliest first; or by the latest change (`order=recent`)' }),
  next: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null: the last page' })
})
export type ScheduledListReply = Static<typeof ScheduledListReply>

/** Names a scheduled message over NATS: its key, or the id its 202 answer gave. */
export const ScheduledRef = Type.Object({
  key: Type.String({ minLength: 1, maxLength: MAX_SCHEDULE_KEY_LENGTH, description: 'A scheduleKey, or a scheduled message\'s id' })
}, { additionalProperties: false })
export type ScheduledRef = Static<typeof ScheduledRef>

export const ScheduledMessageReply = Type.Object({ success: Type.Literal(true), companyId: CompanyId, scheduled: ScheduledMessage })
export type ScheduledMessageReply = Static<typeof ScheduledMessageReply>

/** Over NATS, from any replica: schedule one of the schedulable sends (its request carries `sendAt`). */
export const ScheduleRequest = Type.Object({
  command: SchedulableCommandSchema,
  request: Type.Record(Type.String(), Type.Unknown(), { description: 'The send command\'s request, with `sendAt`' })
}, { additionalProperties: false })
export type ScheduleRequest = Static<typeof ScheduleRequest>

const ClockTime = (description: string) => Type.String({ pattern: '^([01]\\d|2[0-3]):[0-5]\\d$', description: `${description} (HH:MM)` })

export const QuietHours = Type.Object({
  timezone: Type.String({ minLength: 1, maxLength: 64, description: 'An IANA time zone, e.g. Europe/Moscow' }),
  from: ClockTime('The first minute the company may message customers'),
  to: ClockTime('The minute it must stop; before `from` spans midnight (22:00-06:00)')
}, { additionalProperties: false, description: 'The hours scheduled and campaign messages may go out, in the company\'s time zone' })
export type QuietHours = Static<typeof QuietHours>

export const QuietHoursReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  quietHours: Type.Union([QuietHours, Type.Null()], { description: 'null: any time' })
})
export type QuietHoursReply = Static<typeof QuietHoursReply>

const EventRef = {
  id: Type.String({ description: 'The scheduled message\'s id' }),
  scheduleKey: Type.Union([Type.String(), Type.Null()]),
  phone: Type.String({ description: 'The chat, as the send named it' })
}

export const MessageScheduledEventData = Type.Object({
  ...EventRef,
  command: ScheduledMessage.properties.command,
  sendAt: Type.String({ format: 'date-time' }),
  dueAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  replaced: Type.Union([Type.String(), Type.Null()])
}, { description: 'A message was scheduled (its `message_sent` follows when it goes)' })
export type MessageScheduledEventData = Static<typeof MessageScheduledEventData>

export const MessageExpiredEventData = Type.Object({
  ...EventRef,
  dueAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.String({ format: 'date-time' })
}, { description: 'A scheduled message was not sent before its expiresAt (no holder, or it kept failing)' })
export type MessageExpiredEventData = Static<typeof MessageExpiredEventData>

export const MessageFailedEventData = Type.Object({
  ...EventRef,
  error: Failure
}, { description: 'A scheduled message could not be sent and will not be tried again' })
export type MessageFailedEventData = Static<typeof MessageFailedEventData>
