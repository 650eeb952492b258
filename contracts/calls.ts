import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

// The calls area's requests, replies and event data, shared by HTTP, NATS and the typed client.

/** WhatsApp's call id (the offer's `call-id`). */
export const CallId = Type.String({ pattern: '^[0-9A-Za-z]{4,64}$', description: 'WhatsApp\'s call id, as the `call` event gave it' })

export const CallStatus = Type.Union([
  Type.Literal('offer'), Type.Literal('ringing'), Type.Literal('accept'), Type.Literal('reject'), Type.Literal('timeout'),
  Type.Literal('terminate')
], {
  description: 'offer: the call rings; accept / reject: answered or declined (on another device, or by the gateway: see' +
    ' `rejectedBy`); timeout: nobody answered; terminate: it ended (the caller hung up); ringing: any other step WhatsApp tells'
})
export type CallStatus = Static<typeof CallStatus>

const RejectedBy = Type.Union([Type.Literal('auto'), Type.Literal('api'), Type.Null()], {
  description: 'The gateway declined it: `auto` by the company\'s call settings, `api` by POST …/calls/:callId/reject; null otherwise'
})

/** Who called and how: shared by the event and the record. */
const callerFields = {
  callId: CallId,
  from: Type.String({ description: 'The caller\'s chat: a phone JID (`…@s.whatsapp.net`) or a LID JID (`…@lid`)' }),
  phone: Type.Union([Type.String(), Type.Null()], {
    description: 'The caller\'s E.164 digits, when known (WhatsApp\'s `caller_pn` for a LID caller, or a LID the number has seen)'
  }),
  lid: Type.Union([Type.String(), Type.Null()], { description: 'The caller\'s LID JID, when WhatsApp named them by it' }),
  video: Type.Boolean(),
  groupId: Type.Union([Type.String(), Type.Null()], { description: 'A group call: the group\'s JID (on the offer)' }),
  offline: Type.Boolean({ description: 'Told when the number came back online: the call is over; it is neither rejected nor answered' })
}

export const CallEventData = Type.Object({
  ...callerFields,
  status: CallStatus,
  timestamp: Type.String({ format: 'date-time', description: 'When WhatsApp stamped this step' }),
  rejectedBy: Type.Optional(RejectedBy)
}, { description: 'A call to the company\'s number: each step of it. The gateway\'s own rejection is a `reject` with `rejectedBy`' })
export type CallEventData = Static<typeof CallEventData>

export const CallRecord = Type.Object({
  ...callerFields,
  status: CallStatus,
  offeredAt: Type.String({ format: 'date-time', description: 'When the call started ringing' }),
  updatedAt: Type.String({ format: 'date-time', description: 'When its last step came' }),
  rejectedBy: RejectedBy,
  replyMessageId: Type.Union([Type.String(), Type.Null()], { description: 'The text the caller was answered with (call settings)' })
})
export type CallRecord = Static<typeof CallRecord>

export const CallsQuery = Type.Object({
  before: Type.Optional(Type.String({ maxLength: 200, description: 'The `next` of the previous page' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 }))
}, { additionalProperties: false })
export type CallsQuery = Static<typeof CallsQuery>

export const CallsPage = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  calls: Type.Array(CallRecord, { description: 'Most recent first' }),
  next: Type.Union([Type.String(), Type.Null()])
})
export type CallsPage = Static<typeof CallsPage>

const ReplyText = Type.String({ minLength: 1, maxLength: 4096, description: 'Sent to the caller\'s chat once per call' })

export const CallSettings = Type.Object({
  rejectCalls: Type.Boolean({ description: 'Decline every call as it rings (calls told offline are over: never declined)' }),
  replyText: Type.Optional(Type.Union([ReplyText, Type.Null()], { description: 'Answer each caller with this text; null: none' }))
}, { additionalProperties: false })
export type CallSettings = Static<typeof CallSettings>

export const CallSettingsReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  settings: Type.Object({ rejectCalls: Type.Boolean(), replyText: Type.Union([Type.String(), Type.Null()]) })
})
export type CallSettingsReply = Static<typeof CallSettingsReply>

export const CallRejectRequest = Type.Object({ callId: CallId })
export type CallRejectRequest = Static<typeof CallRejectRequest>

export const CallParams = Type.Object({ companyId: CompanyId, callId: CallId })
export type CallParams = Static<typeof CallParams>

export const CallRejectReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  callId: CallId,
  rejected: Type.Boolean({ description: 'false: the call was already over (`status` says how), so nothing was sent' }),
  status: CallStatus
})
export type CallRejectReply = Static<typeof CallRejectReply>
