import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

/**
 * What a principal may do: `send` (texts, reactions), `read` (status, health, lists), `events`
 * (WebSocket and event history), `link` (initialize, QR and pairing-code events, logout), `rules`
 * (auto-reactions), `admin` (keys, provisioning, cluster, metrics JSON; only with every company).
 */
export const SCOPES = ['send', 'read', 'events', 'link', 'rules', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

/** Scopes a company key may carry: `admin` belongs to the admin key and to tokens for every company. */
export const COMPANY_SCOPES = SCOPES.filter((scope) => scope !== 'admin')
const CompanyScope = Type.Union(COMPANY_SCOPES.map((scope) => Type.Literal(scope)))

export const CreateApiKeyRequest = Type.Object({
  companyIds: Type.Array(CompanyId, { minItems: 1, maxItems: 1000, uniqueItems: true }),
  scopes: Type.Array(CompanyScope, { minItems: 1, uniqueItems: true }),
  name: Type.String({ minLength: 1, maxLength: 128, description: 'What uses the key, e.g. booking-bot' })
}, { additionalProperties: false })
export type CreateApiKeyRequest = Static<typeof CreateApiKeyRequest>

const apiKeyInfoProperties = {
  id: Type.String(),
  name: Type.String(),
  companyIds: Type.Array(Type.String()),
  scopes: Type.Array(Type.String()),
  createdAt: Type.String(),
  revokedAt: Type.Union([Type.String(), Type.Null()])
}
export const ApiKeyInfo = Type.Object(apiKeyInfoProperties)
export type ApiKeyInfo = Static<typeof ApiKeyInfo>

export const ApiKeyCreated = Type.Object({
  success: Type.Literal(true),
  ...apiKeyInfoProperties,
  key: Type.String({ description: 'The key itself: shown in this answer only' })
})
export type ApiKeyCreated = Static<typeof ApiKeyCreated>

export const ApiKeyRevoked = Type.Object({ success: Type.Literal(true), id: Type.String(), revoked: Type.Literal(true) })
export type ApiKeyRevoked = Static<typeof ApiKeyRevoked>

export const ApiKeyList = Type.Object({ success: Type.Literal(true), keys: Type.Array(ApiKeyInfo) })
export type ApiKeyList = Static<typeof ApiKeyList>

export const EventsTicketRequest = Type.Object({ companyId: CompanyId })
export type EventsTicketRequest = Static<typeof EventsTicketRequest>

export const EventsTicketReply = Type.Object({
  success: Type.Literal(true),
  ticket: Type.String({ description: 'Pass as ?ticket= on the events WebSocket; valid once, for 60 s, for this company' }),
  expiresAt: Type.String()
})
export type EventsTicketReply = Static<typeof EventsTicketReply>

/** Who a credential acts as: what the dashboard asks first, and a quick check of a key. */
export const WhoAmIReply = Type.Object({
  success: Type.Literal(true),
  principal: Type.Object({
    id: Type.String({ description: '`admin`, `key:<id>`, `jwt:<sub>` or `local` (AUTH_MODE=off)' }),
    kind: Type.String(),
    companies: Type.Union([Type.Literal('*'), Type.Array(CompanyId)], { description: '`*`: every company' }),
    scopes: Type.Array(Type.String())
  })
})
export type WhoAmIReply = Static<typeof WhoAmIReply>
