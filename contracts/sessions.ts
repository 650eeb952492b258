import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

/** The old system's limit, kept. */
export const MAX_MESSAGE_LENGTH = 4096

export const SendRequest = Type.Object({
  phone: Type.String({ minLength: 1, maxLength: 64, description: 'Recipient phone (any notation) or JID' }),
  message: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_LENGTH }),
  options: Type.Optional(Type.Object({
    quoted: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Id of the message to quote' }))
  }))
})
export type SendRequest = Static<typeof SendRequest>

export const SendReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  phone: Type.String({ description: 'E.164 digits the message went to' }),
  messageId: Type.String(),
  timestamp: Type.String()
})
export type SendReply = Static<typeof SendReply>

export const SessionStatus = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  connected: Type.Boolean(),
  status: Type.String({ description: 'connecting | qr | pairing | open | reconnecting | breaker_open | stopped | disconnected' }),
  reconnectAttempts: Type.Number(),
  holder: Type.Union([Type.String(), Type.Null()]),
  epoch: Type.Union([Type.Number(), Type.Null()]),
  health: Type.Object({
    healthy: Type.Boolean(),
    phoneNumber: Type.Union([Type.String(), Type.Null()]),
    lastActivity: Type.Union([Type.String(), Type.Null()])
  })
})
export type SessionStatus = Static<typeof SessionStatus>

export const InitializeRequest = Type.Object({
  phoneNumber: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Link with a pairing code for this number instead of a QR' }))
})
export type InitializeRequest = Static<typeof InitializeRequest>

export const InitializeReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  status: Type.Union([Type.Literal('qr'), Type.Literal('pairing_code'), Type.Literal('connected')]),
  qr: Type.Optional(Type.String()),
  qrDataUrl: Type.Optional(Type.String()),
  qrTerminal: Type.Optional(Type.String()),
  pairingCode: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Type.String()),
  message: Type.String()
})
export type InitializeReply = Static<typeof InitializeReply>

export const LogoutReply = Type.Object({ success: Type.Literal(true), companyId: CompanyId, message: Type.String() })
export type LogoutReply = Static<typeof LogoutReply>

export const SessionsList = Type.Object({
  success: Type.Literal(true),
  count: Type.Number(),
  sessions: Type.Array(Type.Object({
    companyId: CompanyId,
    desired: Type.String(),
    connected: Type.Boolean(),
    status: Type.String(),
    holder: Type.Union([Type.String(), Type.Null()]),
    health: Type.String({ description: 'healthy | unhealthy | unknown' })
  })),
  metrics: Type.Object({ totalSessions: Type.Number(), activeConnections: Type.Number() })
})
export type SessionsList = Static<typeof SessionsList>

export const EventsQuery = Type.Object({
  companyId: CompanyId,
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'Replay every event after this stream sequence' }))
})
export type EventsQuery = Static<typeof EventsQuery>
