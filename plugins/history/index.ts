import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  ANY_REPLICA_QUEUE, CompanyParams, CONTROL_SCOPES, EmptyRequest, ErrorCode, HistoryMediaReply, HistoryMediaRequest, HistoryRequest,
  HistoryRequestReply, HistoryStatusReply, MAX_MESSAGE_ID_LENGTH, type HistorySyncState, type InboundMedia
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { chatOf, declareHolderCommand, type HistoryPort, type StoredMediaRef } from '../session-pool/index.ts'
import { HistoryImporter } from './importer.ts'
import { historyMigrations, HistoryStore } from './store.ts'

export const migrations = historyMigrations

/** The history plugin's public face. */
export interface History {
  /** Resolves once every chunk told so far is imported (tests, benchmarks). */
  settled: (companyId?: string) => Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    history: History
  }
}

const TAGS = ['history']
const BASE = '/api/whatsapp/sessions/:companyId'
const DEFAULT_REQUEST_COUNT = 50

/**
 * The phone's history in the gateway's: the chunks WhatsApp sends a newly linked device (and the
 * answers to requests for older messages) are imported into the message history, with the chats'
 * names and the LID map, by the company's holder; a takeover resumes what was told and not imported.
 * Progress is a `history_sync` event per chunk, the session's status and `GET …/history`.
 */
export default fp(async (app) => {
  // SQL of its own only: the root EntityManager's connection serves it (a fork per statement would only allocate).
  const store = new HistoryStore(() => app.orm.em)
  const importer = new HistoryImporter(store, app.conversations, app.log)
  /** Set as the replica shuts down: chunks not begun are left to the next holder rather than holding the shutdown up. */
  let closing = false

  const stateOf = async (companyId: string): Promise<HistorySyncState> => {
    const mode = app.sessionPool.get(companyId)?.socket?.history.settings.mode ?? (await app.sessionPool.historySettings(companyId)).mode
    return store.state(companyId, mode)
  }
  app.sessionPool.addStatusPart('historySync', stateOf)

  app.sessionPool.onSocket((socket, { companyId, emit }) => {
    const session = app.sessionPool.get(companyId)
    const source = {
      companyId,
      history: () => session?.socket?.history,
      publish: (data: Parameters<typeof emit<'history_sync'>>[1]) => emit('history_sync', data),
      holds: () => !closing && session !== undefined && app.sessionPool.get(companyId) === session
    }
    socket.on('connection', (update) => {
      if (update.connection !== 'open') return
      importer.resume(source).catch((err: unknown) => app.log.error({ err, companyId }, 'the history import could not resume'))
    })
    socket.on('historyNotices', (notices) => {
      importer.told(source, notices).catch((err: unknown) => app.log.error({ err, companyId }, 'history chunks told were not kept'))
    })
  })

  const historyOf = (companyId: string): HistoryPort => {
    const history = app.sessionPool.get(companyId)?.socket?.history
    if (!history) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} is not connected`)
    return history
  }

  // Both routes name everything in the path: a POST without a body (curl -X POST) is the empty one.
  const BODYLESS = new Set([`${BASE}/chats/:chat/history`, `${BASE}/messages/:messageId/media`])
  app.addHook('preValidation', async (request) => {
    if (request.method === 'POST' && BODYLESS.has(request.routeOptions.url ?? '')) request.body ??= {}
  })

  declareHolderCommand(app, {
    name: 'history-request',
    request: HistoryRequest,
    reply: HistoryRequestReply,
    http: {
      method: 'POST',
      url: `${BASE}/chats/:chat/history`,
      params: Type.Object({ companyId: CompanyParams.properties.companyId, chat: HistoryRequest.properties.chat }),
      operationId: 'requestHistory',
      tags: TAGS,
      summary: 'Ask the phone for older messages of a chat: they arrive as a `history_sync` event (syncType `on_demand`) and in' +
        ' the history',
      errors: [404, 503, 504]
    },
    handle: async ({ companyId, request }) => {
      const history = historyOf(companyId)
      const chat = await chatOf(app, companyId, request.chat)
      const listed = chat.group ? chat.jid : chat.phone ? `${chat.phone}@s.whatsapp.net` : chat.jid
      const anchor = request.before === undefined
        ? await app.conversations.oldestIn(companyId, listed)
        : await app.conversations.message(companyId, request.before)
      if (!anchor || (request.before !== undefined && !belongsTo(anchor, chat))) {
        throw new GatewayError(ErrorCode.NOT_FOUND, request.before === undefined
          ? `the history holds no message of ${request.chat} to go back from`
          : `message ${request.before} is not one of ${request.chat} in the history`)
      }
      const requestId = await history.requestOlder({
        chat: chat.jid,
        messageId: anchor.messageId,
        fromMe: anchor.direction === 'out',
        timestampMs: Date.parse(anchor.timestamp)
      }, request.count ?? DEFAULT_REQUEST_COUNT)
      return { success: true as const, companyId, chat: chat.jid, requestId, before: anchor.messageId }
    }
  })

  declareHolderCommand(app, {
    name: 'history-media',
    request: HistoryMediaRequest,
    reply: HistoryMediaReply,
    http: {
      method: 'POST',
      url: `${BASE}/messages/:messageId/media`,
      params: Type.Object({
        companyId: CompanyParams.properties.companyId,
        messageId: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH })
      }),
      operationId: 'fetchHistoryMedia',
      tags: TAGS,
      summary: 'Fetch the file of a message of the imported history into the media store (then GET …/media/:objectId)',
      errors: [404, 503, 504]
    },
    handle: async ({ companyId, request }) => {
      const history = historyOf(companyId)
      const record = await app.conversations.message(companyId, request.messageId)
      const described = record?.media as Record<string, unknown> | undefined
      if (!record || !described) throw new GatewayError(ErrorCode.NOT_FOUND, `message ${request.messageId} has no file in the history`)
      if (typeof described.objectId === 'string' && typeof described.sha256 === 'string') {
        return { success: true as const, companyId, messageId: record.messageId, media: described as InboundMedia }
      }
      const ref = await app.conversations.historyMediaRef(companyId, request.messageId) as StoredMediaRef | undefined
      if (!ref) throw new GatewayError(ErrorCode.NOT_FOUND, `the file of message ${request.messageId} cannot be fetched`)
      const mimetype = typeof described.mimetype === 'string' ? described.mimetype : 'application/octet-stream'
      const fileName = typeof described.fileName === 'string' ? described.fileName : undefined
      const stream = await history.downloadMedia(ref).catch((err: unknown) => {
        throw new GatewayError(ErrorCode.MEDIA_UNAVAILABLE, `WhatsApp did not give the file: ${(err as Error).message}`)
      })
      const stored = await app.media.save(companyId, stream, { kind: ref.kind, mimetype, ...(fileName ? { fileName } : {}) })
      const { onDemand: _fetchedNow, ...kept } = described
      const media = {
        ...kept, kind: ref.kind, mimetype, size: stored.size, sha256: stored.sha256, objectId: stored.objectId
      } as InboundMedia
      await app.conversations.fetchedMedia(companyId, record.messageId, media)
      return { success: true as const, companyId, messageId: record.messageId, media }
    }
  })

  const statusReply = async (companyId: string): Promise<HistoryStatusReply> =>
    ({ success: true, companyId, sync: await stateOf(companyId) })
  app.withTypeProvider<TypeBoxTypeProvider>().get(`${BASE}/history`, {
    config: { access: { scope: CONTROL_SCOPES['history.status'], company: 'params' } },
    schema: {
      operationId: 'historyStatus',
      tags: TAGS,
      summary: 'How far the import of the history the phone sends a newly linked device is',
      params: CompanyParams,
      response: { 200: HistoryStatusReply }
    }
  }, (request) => statusReply(request.params.companyId))
  const answering = app.bus.handle(app.subjects.historyStatus('*'),
    { request: EmptyRequest, reply: HistoryStatusReply, queue: ANY_REPLICA_QUEUE },
    (_request, context) => statusReply(context.companyId))

  app.decorate('history', {
    settled: (companyId) => importer.settled(companyId)
  } satisfies History)

  app.addHook('preClose', async () => {
    closing = true
    await importer.settled()
  })
  app.addHook('onClose', async () => { await answering.close() })
}, { name: 'history', dependencies: ['config', 'bus', 'db', 'events', 'conversations', 'media', 'ownership', 'session-pool'] })

/** Whether a message of the history is one of the chat's. */
function belongsTo (
  record: { groupId?: string, phone: string | null, lid: string | null },
  chat: { jid: string, group: boolean, phone: string | null, lid: string | null }
): boolean {
  if (chat.group) return record.groupId === chat.jid
  if (record.groupId) return false
  return (chat.phone !== null && record.phone === chat.phone) || (chat.lid !== null && record.lid === chat.lid) || record.lid === chat.jid
}
