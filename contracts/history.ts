import { Type, type Static } from 'typebox'
import { CompanyId, MAX_MESSAGE_ID_LENGTH } from './common.ts'
import { DescribedMedia, InboundMedia } from './media.ts'

/** What a newly linked number brings of its history: nothing, what WhatsApp sends a new device by default, or all of it. */
export const HISTORY_SYNC_MODES = ['off', 'recent', 'full'] as const
export type HistorySyncMode = (typeof HISTORY_SYNC_MODES)[number]

/** WhatsApp's kinds of history chunk (`HistorySync.HistorySyncType`, in its order). */
export const HISTORY_SYNC_TYPES = [
  'initial_bootstrap', 'initial_status', 'full', 'recent', 'push_name', 'non_blocking_data', 'on_demand'
] as const
export type HistorySyncType = (typeof HISTORY_SYNC_TYPES)[number]

/** The largest number of older messages one request asks the phone for. */
export const MAX_HISTORY_REQUEST = 500

export const HistorySyncModeSchema = Type.Unsafe<HistorySyncMode>({
  type: 'string',
  enum: [...HISTORY_SYNC_MODES],
  description: '`off`: none; `recent`: what WhatsApp sends a new device (recent chats and messages); `full`: WhatsApp is asked for all'
})

/** The history a company's link brings, chosen at initialize (else the deployment's HISTORY_SYNC and HISTORY_SYNC_DAYS). */
export const HistoryLinkSettings = Type.Object({
  sync: Type.Optional(HistorySyncModeSchema),
  days: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 36_500 }), Type.Null()], {
    description: 'Leave out messages older than this many days; null: no limit'
  }))
}, { additionalProperties: false, description: 'What a new link imports of the phone\'s history; kept for the company\'s next links' })
export type HistoryLinkSettings = Static<typeof HistoryLinkSettings>

const SyncTypeSchema = Type.Unsafe<HistorySyncType>({ type: 'string', enum: [...HISTORY_SYNC_TYPES] })

export const HistorySyncState = Type.Object({
  mode: HistorySyncModeSchema,
  state: Type.Union([Type.Literal('idle'), Type.Literal('running'), Type.Literal('done')], {
    description: '`idle`: nothing was imported yet; `running`: chunks are arriving or waiting to be imported; `done`: the phone sent' +
      ' its last chunk and all are imported'
  }),
  progress: Type.Union([Type.Integer({ minimum: 0, maximum: 100 }), Type.Null()], { description: 'How far the phone says its sync is' }),
  chunks: Type.Integer({ minimum: 0, description: 'Chunks imported' }),
  pending: Type.Integer({ minimum: 0, description: 'Chunks told and not imported yet' }),
  chats: Type.Integer({ minimum: 0, description: 'Chats the imported chunks held, each counted once' }),
  messages: Type.Integer({ minimum: 0, description: 'Messages imported (a message stored before is not counted again)' }),
  startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  updatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()])
}, { description: 'The import of the history the phone sends a newly linked device' })
export type HistorySyncState = Static<typeof HistorySyncState>

export const HistoryStatusReply = Type.Object({ success: Type.Literal(true), companyId: CompanyId, sync: HistorySyncState })
export type HistoryStatusReply = Static<typeof HistoryStatusReply>

export const HistoryRequestBody = Type.Object({
  before: Type.Optional(Type.String({
    minLength: 1,
    maxLength: MAX_MESSAGE_ID_LENGTH,
    description: 'The id of the message to go back from (one of the chat in the history); unset: the chat\'s oldest one'
  })),
  count: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_HISTORY_REQUEST, description: 'How many older messages (default 50)' }))
}, { additionalProperties: false })
export type HistoryRequestBody = Static<typeof HistoryRequestBody>

/** A holder command's body names the chat; over HTTP it comes from the path. */
export const HistoryRequest = Type.Object({
  chat: Type.String({ minLength: 1, maxLength: 80 }),
  ...HistoryRequestBody.properties
}, { additionalProperties: false })
export type HistoryRequest = Static<typeof HistoryRequest>

export const HistoryRequestReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  chat: Type.String({ description: 'The chat\'s JID' }),
  requestId: Type.String({ description: 'The request\'s id: the answer\'s `history_sync` event (syncType `on_demand`) names it' }),
  before: Type.String({ description: 'The message the phone goes back from' })
})
export type HistoryRequestReply = Static<typeof HistoryRequestReply>

export const HistorySyncEventData = Type.Object({
  syncType: SyncTypeSchema,
  chunk: Type.Integer({ minimum: 0, description: 'The chunk\'s place in its sync (WhatsApp\'s chunkOrder)' }),
  progress: Type.Union([Type.Integer({ minimum: 0, maximum: 100 }), Type.Null()], { description: 'How far the phone says its sync is' }),
  chats: Type.Integer({ minimum: 0, description: 'Chats in this chunk' }),
  messages: Type.Integer({ minimum: 0, description: 'Messages this chunk added to the history' }),
  done: Type.Boolean({ description: 'The sync is over: the phone sent its last chunk and every chunk is imported' }),
  requestId: Type.Optional(Type.String({ description: 'For `on_demand`: the request (POST …/chats/:chat/history) it answers' })),
  totals: Type.Object({
    chunks: Type.Integer({ minimum: 0 }),
    chats: Type.Integer({ minimum: 0 }),
    messages: Type.Integer({ minimum: 0 })
  }, { description: 'What the sync imported so far' })
}, { description: 'A chunk of the phone\'s history was imported (after a link, or answering a request for older messages)' })
export type HistorySyncEventData = Static<typeof HistorySyncEventData>

export const HistoryMediaRequest = Type.Object({
  messageId: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH })
}, { additionalProperties: false })
export type HistoryMediaRequest = Static<typeof HistoryMediaRequest>

export const HistoryMediaReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  messageId: Type.String(),
  media: InboundMedia
})
export type HistoryMediaReply = Static<typeof HistoryMediaReply>

/** The file of a message of the imported history, not fetched yet: `POST …/messages/:messageId/media` fetches it. */
export const HistoryMedia = Type.Object({
  ...DescribedMedia,
  sha256: Type.Optional(Type.String({ description: 'Hex SHA-256 of the file, as its message declares' })),
  onDemand: Type.Literal(true, { description: 'Fetched when asked for (POST …/messages/:messageId/media)' })
})
export type HistoryMedia = Static<typeof HistoryMedia>
