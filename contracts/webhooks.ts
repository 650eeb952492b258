import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

/** Every event type the gateway publishes (what a webhook may subscribe to). */
export const EVENT_TYPES = [
  'qr', 'pairing_code', 'connected', 'disconnected', 'message', 'message_sent', 'message_status', 'logout',
  'connection_replaced', 'reconnect_failed', 'health_check_failed', 'error', 'owner_changed', 'webhook_paused',
  'group_update', 'group_participants', 'group_joined', 'group_left',
  'poll_vote',
  'blocklist_update',
  'call',
  'chat_update',
  'status',
  'history_sync',
  'message_scheduled', 'message_expired', 'message_failed',
  'campaign_progress'
] as const

const WebhookUrl = Type.String({ minLength: 8, maxLength: 2048, description: 'An http(s) URL (public addresses only)' })
const EventTypes = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
  minItems: 1, maxItems: EVENT_TYPES.length, description: `Event types to deliver (all by default): ${EVENT_TYPES.join(', ')}`
})
const Secret = Type.String({ pattern: '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$', description: 'A Standard Webhooks secret (`whsec_` + base64)' })

export const WebhookCreate = Type.Object({ url: WebhookUrl, events: Type.Optional(EventTypes), secret: Type.Optional(Secret) })
export type WebhookCreate = Static<typeof WebhookCreate>

export const WebhookUpdate = Type.Object({
  url: Type.Optional(WebhookUrl),
  events: Type.Optional(Type.Union([EventTypes, Type.Null()])),
  paused: Type.Optional(Type.Boolean({ description: 'false resumes a paused webhook (and its failure clock)' }))
})
export type WebhookUpdate = Static<typeof WebhookUpdate>

export const WebhookView = Type.Object({
  id: Type.String(),
  companyId: Type.Union([CompanyId, Type.Null()], { description: 'null: every company (a deployment-wide webhook)' }),
  url: Type.String(),
  events: Type.Union([Type.Array(Type.String()), Type.Null()]),
  paused: Type.Boolean(),
  pausedReason: Type.Union([Type.String(), Type.Null()]),
  failingSince: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  previousSecretExpiresAt: Type.Union([Type.String(), Type.Null()], {
    description: 'Until then deliveries are signed with the secret the last rotation replaced too (null: one secret)'
  }),
  backlog: Type.Optional(Type.Integer({ description: 'Events it has yet to deliver (GET of one webhook)' }))
})
export type WebhookView = Static<typeof WebhookView>

/** The secret is shown when the webhook is made, and never again. */
export const WebhookCreated = Type.Object({ success: Type.Literal(true), webhook: WebhookView, secret: Type.String() })
/** A new signing secret; the one it replaces keeps signing beside it for the overlap (Standard Webhooks takes several signatures). */
export const WebhookSecretRotation = Type.Object({
  secret: Type.Optional(Secret),
  overlapSeconds: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 7 * 24 * 3600,
    description: 'How long deliveries carry the old secret\'s signature too (default WEBHOOK_SECRET_OVERLAP); 0 drops it at once'
  }))
}, { additionalProperties: false })
export type WebhookSecretRotation = Static<typeof WebhookSecretRotation>
export const WebhookSecretRotated = Type.Object({ success: Type.Literal(true), webhook: WebhookView, secret: Type.String() })

export const WebhookReply = Type.Object({ success: Type.Literal(true), webhook: WebhookView })
export const WebhooksList = Type.Object({ success: Type.Literal(true), webhooks: Type.Array(WebhookView) })
export const WebhookParams = Type.Object({ companyId: CompanyId, id: Type.String({ pattern: '^wh_[a-f0-9]{32}$' }) })
export const AdminWebhookParams = Type.Object({ id: Type.String({ pattern: '^wh_[a-f0-9]{32}$' }) })

export const DeliveriesReply = Type.Object({
  success: Type.Literal(true),
  deliveries: Type.Array(Type.Object({
    eventId: Type.String(),
    seq: Type.Number(),
    attempt: Type.Integer(),
    status: Type.Union([Type.Integer(), Type.Null()]),
    latencyMs: Type.Integer(),
    error: Type.Union([Type.String(), Type.Null()]),
    at: Type.String()
  })),
  deadLetters: Type.Array(Type.Object({
    eventId: Type.String(), seq: Type.Number(), type: Type.String(), companyId: Type.String(), reason: Type.String(), at: Type.String()
  }))
})

export const ReplayRequest = Type.Object({
  since: Type.Union([Type.Integer({ minimum: 0, description: 'Deliver again every event after this stream sequence' }),
    Type.String({ format: 'date-time', description: 'or from this time' })])
})
export type ReplayRequest = Static<typeof ReplayRequest>
