import { Type, type Static, type TSchema } from 'typebox'
import { DateTime, EventEnvelope } from './common.ts'
import { GatewayHeaders } from './subjects.ts'
import { OwnerChanged } from './cluster.ts'
import { DeliveryState } from './conversations.ts'
import { Location } from './content.ts'
import { ErrorReply } from './errors.ts'
import { InboundMedia, MediaKind, ObjectId, UnavailableMedia } from './media.ts'
import { EVENT_TYPES } from './webhooks.ts'
import { PollVoteEventData } from './polls.ts'
import { BlocklistUpdateEventData } from './profiles.ts'
import { CallEventData } from './calls.ts'
import { ChatUpdateEventData } from './chats.ts'
import { StatusEventData } from './status.ts'
import { HistorySyncEventData } from './history.ts'
import { MessageExpiredEventData, MessageFailedEventData, MessageScheduledEventData } from './scheduled.ts'
import { CampaignProgressEventData } from './campaigns.ts'

/**
 * The `data` of every event type, as the gateway publishes it on `<namespace>.evt.<companyId>.<type>`
 * (and so on the WebSocket and to webhooks). The publishing code is typed by these (Events.publish),
 * and the AsyncAPI document at /docs/asyncapi.json is built from them.
 */

export type EventType = (typeof EVENT_TYPES)[number]

/** A WhatsApp close code (Baileys' DisconnectReason); null when the connection ended without one. */
const CloseCodeOrNull = Type.Union([Type.Integer(), Type.Null()], { description: 'WhatsApp\'s close code; null when there was none' })

export const QrEventData = Type.Object({
  qr: Type.String({ description: 'The QR reference the phone scans (WhatsApp → Linked devices)' }),
  qrDataUrl: Type.String({ description: 'The QR as a PNG data URL (`data:image/png;base64,…`)' }),
  qrTerminal: Type.String({ description: 'The QR drawn with characters, for a terminal' })
}, { description: 'A QR code to link the device; each one replaces the one before. Only for principals with `link`' })
export type QrEventData = Static<typeof QrEventData>

export const PairingCodeEventData = Type.Object({
  code: Type.String({ description: 'The code the phone\'s user enters instead of scanning a QR' }),
  phoneNumber: Type.String({ description: 'E.164 digits of the account being linked' }),
  expiresAt: DateTime('When the code stops being valid')
}, { description: 'A pairing code, when initialize named a phone number. Only for principals with `link`' })
export type PairingCodeEventData = Static<typeof PairingCodeEventData>

export const ConnectedEventData = Type.Object({
  phoneNumber: Type.Union([Type.String(), Type.Null()], { description: 'The linked account\'s JID (`<digits>@s.whatsapp.net`)' }),
  isNewLogin: Type.Boolean({
    description: 'Baileys\' `isNewLogin` on the update that opened the connection; Baileys 7 reports a new login on an earlier' +
      ' update, so it is false in practice (a new link shows as the `qr` or `pairing_code` before it)'
  })
}, { description: 'The connection is open: messages can be sent' })
export type ConnectedEventData = Static<typeof ConnectedEventData>

export const DisconnectedEventData = Type.Object({
  code: CloseCodeOrNull
}, {
  description: 'The connection closed. 515 (the restart after linking) and transient codes (428, 500, 503, 408 once linked) are' +
    ' followed by a reconnect; 440, 401, 403, 411 and 408 while unlinked end the session, each with its own event'
})
export type DisconnectedEventData = Static<typeof DisconnectedEventData>

/** A location as WhatsApp delivers it: the request limits of a sent one do not apply. */
export const ReceivedLocation = Type.Object({
  latitude: Type.Number(),
  longitude: Type.Number(),
  name: Type.Optional(Type.String()),
  address: Type.Optional(Type.String())
})
export type ReceivedLocation = Static<typeof ReceivedLocation>

export const MessageEventData = Type.Object({
  messageId: Type.String({ description: 'WhatsApp\'s id of the message; a copy published by a newer holder carries the same' }),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'The contact\'s E.164 digits, when known' }),
  jid: Type.Union([Type.String(), Type.Null()], { description: 'The contact\'s phone JID (`<digits>@s.whatsapp.net`), when known' }),
  lid: Type.Union([Type.String(), Type.Null()], { description: 'The contact\'s LID JID (`<digits>@lid`), when known' }),
  pushName: Type.Union([Type.String(), Type.Null()], { description: 'The name the contact set in WhatsApp' }),
  text: Type.Union([Type.String(), Type.Null()], {
    description: 'The text; null for a message without one (a file\'s caption is `media.caption`)'
  }),
  timestamp: DateTime('When WhatsApp says the message was sent (seconds)'),
  offline: Type.Boolean({ description: 'WhatsApp kept it while the device was away and handed it over at login' }),
  media: Type.Optional(Type.Union([InboundMedia, UnavailableMedia], {
    description: 'A media message: its file in the media bucket (`objectId`), or why it could not be fetched (`error`)'
  })),
  location: Type.Optional(ReceivedLocation),
  contact: Type.Optional(Type.Object({
    name: Type.String({ description: 'The card\'s display name (may be empty)' }),
    vcard: Type.String()
  }, { description: 'A contact card' })),
  quotedMessageId: Type.Optional(Type.String({ description: 'The message it replies to' })),
  groupId: Type.Optional(Type.String({
    description: 'In a group: the group\'s JID (`…@g.us`); `phone`, `jid`, `lid` and `pushName` are then the participant who wrote'
  })),
  mentions: Type.Optional(Type.Array(Type.String(), { description: 'JIDs the message mentions (LID JIDs in LID groups)' }))
}, { description: 'A contact wrote to the company, or in a group it is in. Dedupe on `messageId`, keeping the highest `epoch`' })
export type MessageEventData = Static<typeof MessageEventData>

/** Every kind of outbound message: sends by content, and the changes and reactions that travel as messages. */
export const SentKind = Type.Union([
  Type.Literal('text'), Type.Literal('media'), Type.Literal('location'), Type.Literal('contact'),
  Type.Literal('edit'), Type.Literal('delete'), Type.Literal('reaction'), Type.Literal('poll')
])
export type SentKind = Static<typeof SentKind>

export const MessageSentEventData = Type.Object({
  messageId: Type.String({ description: 'WhatsApp\'s id of the message the gateway sent' }),
  kind: SentKind,
  phone: Type.Union([Type.String(), Type.Null()], {
    description: 'The contact\'s E.164 digits; null for a send to a contact known only by LID (edits, deletions and reactions' +
      ' carry the LID\'s digits then)'
  }),
  timestamp: DateTime('When WhatsApp took it (seconds)'),
  lid: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Sends: the contact\'s LID JID, when known' })),
  text: Type.Optional(Type.String()),
  media: Type.Optional(Type.Object({ kind: MediaKind, objectId: ObjectId }, { description: 'The file sent, in the media bucket' })),
  location: Type.Optional(Location),
  contact: Type.Optional(Type.Object({ name: Type.String(), phones: Type.Optional(Type.Array(Type.String())) })),
  quotedMessageId: Type.Optional(Type.String({ description: 'The message it replies to' })),
  groupId: Type.Optional(Type.String({ description: 'A send to a group: the group\'s JID (`phone` is then null)' })),
  mentions: Type.Optional(Type.Array(Type.String(), { description: 'JIDs the message mentions' })),
  poll: Type.Optional(Type.Object({
    question: Type.String(), options: Type.Array(Type.String()), multipleAnswers: Type.Boolean()
  }, { description: 'A poll (`text` is its question)' })),
  scheduled: Type.Optional(Type.Object({ id: Type.String(), scheduleKey: Type.Union([Type.String(), Type.Null()]) }, {
    description: 'A scheduled message: its id and key (GET …/scheduled/{key})'
  })),
  campaign: Type.Optional(Type.Object({ id: Type.String(), seq: Type.Integer({ minimum: 0 }) }, {
    description: 'A campaign\'s message: the campaign and the recipient\'s place in it (its report\'s `seq`)'
  }))
}, { description: 'WhatsApp took a message the company sent (any replica, any client): sends, edits, deletions, reactions' })
export type MessageSentEventData = Static<typeof MessageSentEventData>
/** What a send adds to its `message_sent` event besides what every outbound message has. */
export type MessageSentDetails = Partial<Omit<MessageSentEventData, 'messageId' | 'kind' | 'timestamp'>>

export const MessageStatusEventData = Type.Object({
  messageId: Type.String(),
  to: Type.String({ description: 'The chat\'s JID' }),
  status: Type.Union([
    Type.Literal('server'), Type.Literal('delivered'), Type.Literal('read'), Type.Literal('played'), Type.Literal('error')
  ], { description: 'The receipt WhatsApp sent' }),
  state: DeliveryState,
  failure: Type.Optional(Type.Object({
    code: Type.String({ description: 'WhatsApp\'s refusal code (463: a restricted account or no privacy token)' }),
    message: Type.String()
  }, { description: 'For `failed`: why WhatsApp refused the message' })),
  timestamp: DateTime('The receipt\'s time (seconds)')
}, { description: 'An outbound message\'s delivery state moved forward (it never moves back, nor repeats)' })
export type MessageStatusEventData = Static<typeof MessageStatusEventData>

export const LogoutEventData = Type.Object({
  code: Type.Literal(401, { description: 'WhatsApp\'s close code for a logged-out device' })
}, { description: 'The phone removed the device: its auth state is wiped; linking again needs a new initialize' })
export type LogoutEventData = Static<typeof LogoutEventData>

export const ConnectionReplacedEventData = Type.Object({
  code: Type.Literal(440, { description: 'WhatsApp\'s close code for a replaced connection' })
}, { description: 'Another client logged in with this device; the session ends (no reconnect) and the company goes offline' })
export type ConnectionReplacedEventData = Static<typeof ConnectionReplacedEventData>

export const ReconnectFailedEventData = Type.Object({
  code: CloseCodeOrNull,
  attempts: Type.Integer({ minimum: 0, description: 'Reconnects tried (RECONNECT_MAX_ATTEMPTS)' })
}, { description: 'Transient closes went on past the attempt limit; the session ends and the company goes offline' })
export type ReconnectFailedEventData = Static<typeof ReconnectFailedEventData>

export const HealthCheckFailedEventData = Type.Object({
  state: Type.Union([
    Type.Literal('connecting'), Type.Literal('qr'), Type.Literal('pairing'), Type.Literal('open'), Type.Literal('reconnecting'),
    Type.Literal('breaker_open'), Type.Literal('stopped')
  ], { description: 'The connection\'s state while unhealthy (not `open`)' }),
  unhealthyForMs: Type.Integer({ minimum: 0 }),
  reconnectAttempts: Type.Integer({ minimum: 0 })
}, { description: 'The session stayed unconnected past HEALTH_FAILED_AFTER_MS, once per such stretch; nothing is reconnected for it' })
export type HealthCheckFailedEventData = Static<typeof HealthCheckFailedEventData>

export const SessionErrorEventData = Type.Union([
  Type.Object({ reason: Type.Literal('pairing_code_failed'), message: Type.String() }, {
    title: 'pairing_code_failed', description: 'WhatsApp gave no pairing code'
  }),
  Type.Object({
    reason: Type.Union([Type.Literal('forbidden'), Type.Literal('multidevice_mismatch')]),
    code: Type.Integer({ description: '403 or 411' })
  }, { title: 'refused', description: 'WhatsApp refused the device; the session ends' }),
  Type.Object({ reason: Type.Literal('qr_expired'), code: Type.Integer({ description: '408' }), message: Type.String() }, {
    title: 'qr_expired', description: 'No QR was scanned in time; the session ends until a new initialize'
  }),
  Type.Object({ reason: Type.Literal('circuit_open'), code: CloseCodeOrNull, retryAt: DateTime('When reconnecting resumes') }, {
    title: 'circuit_open', description: 'BREAKER_THRESHOLD failures within BREAKER_WINDOW_MS: reconnects wait BREAKER_COOLDOWN_MS'
  }),
  Type.Object({
    reason: Type.Union([Type.Literal('proxy_unreachable'), Type.Literal('proxy_auth_failed')]),
    code: Type.Null(),
    message: Type.String({ description: 'What the proxy (or the connection to it) said; never its credentials' }),
    retryAt: DateTime('When the next attempt is made')
  }, {
    title: 'proxy_failed',
    description: 'The company\'s proxy failed the connection: it is tried again with backoff (up to a minute), apart from' +
      ' RECONNECT_MAX_ATTEMPTS, until it answers or the company\'s proxy is changed'
  })
], { description: 'Something went wrong with the connection; branch on `reason`' })
export type SessionErrorEventData = Static<typeof SessionErrorEventData>

export const WebhookPausedEventData = Type.Object({
  webhookId: Type.String(),
  url: Type.String(),
  reason: Type.String({ description: 'Why, e.g. how long it has been failing' })
}, { description: 'A company webhook failing for WEBHOOK_DISABLE_AFTER was paused; `PATCH {"paused": false}` resumes it' })
export type WebhookPausedEventData = Static<typeof WebhookPausedEventData>

const GroupMemberData = Type.Object({
  jid: Type.String({ description: 'As the group addresses the member (a LID JID in LID groups)' }),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'E.164 digits, when known' }),
  lid: Type.Union([Type.String(), Type.Null()])
})
const Author = Type.Union([Type.String(), Type.Null()], { description: 'Who made the change (a JID), when WhatsApp tells' })

export const GroupUpdateEventData = Type.Object({
  groupId: Type.String(),
  author: Author,
  subject: Type.Optional(Type.String()),
  description: Type.Optional(Type.String({ description: '"" when removed' })),
  announcementOnly: Type.Optional(Type.Boolean()),
  locked: Type.Optional(Type.Boolean()),
  joinApproval: Type.Optional(Type.Boolean()),
  membersCanAdd: Type.Optional(Type.Boolean()),
  disappearingSeconds: Type.Optional(Type.Integer()),
  inviteCode: Type.Optional(Type.String({ description: 'A new invite code: the old link stopped working' })),
  picture: Type.Optional(Type.Boolean({ description: 'true: the group\'s picture changed' }))
}, { description: 'A group the number is in changed: only the fields that changed are present' })
export type GroupUpdateEventData = Static<typeof GroupUpdateEventData>

export const GroupParticipantsEventData = Type.Object({
  groupId: Type.String(),
  author: Author,
  action: Type.Union([
    Type.Literal('add'), Type.Literal('remove'), Type.Literal('promote'), Type.Literal('demote'), Type.Literal('join_request')
  ]),
  participants: Type.Array(GroupMemberData)
}, { description: 'Participants were added, removed, promoted or demoted, or asked to join (join_request)' })
export type GroupParticipantsEventData = Static<typeof GroupParticipantsEventData>

export const GroupJoinedEventData = Type.Object({
  groupId: Type.String(),
  author: Author,
  subject: Type.Union([Type.String(), Type.Null()])
}, { description: 'The company\'s number joined a group: it created it, was added, or joined by a link' })
export type GroupJoinedEventData = Static<typeof GroupJoinedEventData>

export const GroupLeftEventData = Type.Object({
  groupId: Type.String(),
  author: Author
}, { description: 'The company\'s number left a group, or was removed from it (author: who removed it)' })
export type GroupLeftEventData = Static<typeof GroupLeftEventData>

/** The `data` schema of each event type. */
export const EVENT_DATA = {
  qr: QrEventData,
  pairing_code: PairingCodeEventData,
  connected: ConnectedEventData,
  disconnected: DisconnectedEventData,
  message: MessageEventData,
  message_sent: MessageSentEventData,
  message_status: MessageStatusEventData,
  logout: LogoutEventData,
  connection_replaced: ConnectionReplacedEventData,
  reconnect_failed: ReconnectFailedEventData,
  health_check_failed: HealthCheckFailedEventData,
  error: SessionErrorEventData,
  owner_changed: OwnerChanged,
  webhook_paused: WebhookPausedEventData,
  group_update: GroupUpdateEventData,
  group_participants: GroupParticipantsEventData,
  group_joined: GroupJoinedEventData,
  group_left: GroupLeftEventData,
  poll_vote: PollVoteEventData,
  blocklist_update: BlocklistUpdateEventData,
  call: CallEventData,
  chat_update: ChatUpdateEventData,
  status: StatusEventData,
  history_sync: HistorySyncEventData,
  message_scheduled: MessageScheduledEventData,
  message_expired: MessageExpiredEventData,
  message_failed: MessageFailedEventData,
  campaign_progress: CampaignProgressEventData
} as const satisfies Record<EventType, TSchema>

export type EventData<T extends EventType> = Static<(typeof EVENT_DATA)[T]>

/** One event type's whole envelope: `type` fixed, `data` of its schema. */
export function eventSchemaOf<T extends EventType> (type: T) {
  return Type.Object({ ...EventEnvelope.properties, type: Type.Literal(type), data: EVENT_DATA[type] })
}
export type EventOf<T extends EventType> = Omit<EventEnvelope, 'type' | 'data'> & { type: T, data: EventData<T> }

/** The events WebSocket's first message: everything after stream sequence `seq` follows. */
export const EventsSubscribed = Type.Object({
  type: Type.Literal('subscribed'),
  companyId: EventEnvelope.properties.companyId,
  seq: Type.Integer({ minimum: 0, description: 'Events after this stream sequence follow; reconnect with `since` to resume' })
})
export type EventsSubscribed = Static<typeof EventsSubscribed>

/** Sent before the events WebSocket closes (1011) when the events stream could not be followed. */
export const EventsSocketError = Type.Object({
  type: Type.Literal('error'),
  companyId: EventEnvelope.properties.companyId,
  error: ErrorReply.properties.error
})
export type EventsSocketError = Static<typeof EventsSocketError>

/** An event as the WebSocket and webhooks deliver it: read back from the events stream, so with its sequence. */
export const StreamSequence = Type.Object({
  seq: Type.Integer({
    minimum: 1,
    description: 'The event\'s sequence in the events stream: resume the WebSocket with `since`, replay a webhook from it'
  })
})

/** JetStream's deduplication header: the event's id. */
export const NATS_MSG_ID = 'Nats-Msg-Id'
/** W3C Trace Context (present when the producer was traced). */
const TraceContext = {
  traceparent: Type.Optional(Type.String({ pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' })),
  tracestate: Type.Optional(Type.String())
}

/** The headers of every event on `<namespace>.evt.<companyId>.<type>`. */
export const EventHeaders = Type.Object({
  [NATS_MSG_ID]: Type.String({ description: 'The event\'s `id`: JetStream stores a repeat within EVENTS_DUPLICATE_WINDOW_MS once' }),
  [GatewayHeaders.epoch]: Type.String({ pattern: '^[0-9]+$', description: 'The event\'s `epoch`, readable without parsing the body' }),
  [GatewayHeaders.replica]: Type.String({ description: 'The event\'s `replica`' }),
  ...TraceContext
})
export type EventHeaders = Static<typeof EventHeaders>

/** One `v1,<base64 HMAC-SHA256>` per secret, space-separated (two during a secret rotation\'s overlap). */
export const WEBHOOK_SIGNATURE_PATTERN = '^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$'

/** The Standard Webhooks headers of every webhook delivery (the body is the event, with its `seq`). */
export const WebhookHeaders = Type.Object({
  'content-type': Type.Literal('application/json'),
  'webhook-id': Type.String({ description: 'The event\'s `id`, the same on every attempt: deduplicate by it' }),
  'webhook-timestamp': Type.String({ pattern: '^[0-9]+$', description: 'The attempt\'s time, Unix seconds (reject old ones)' }),
  'webhook-signature': Type.String({
    pattern: WEBHOOK_SIGNATURE_PATTERN,
    description: 'HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` with the base64-decoded `whsec_` secret, as' +
      ' `v1,<base64>`; during a rotation\'s overlap one per secret, space-separated: accept the delivery if any verifies'
  })
})
export type WebhookHeaders = Static<typeof WebhookHeaders>
