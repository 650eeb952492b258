import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import type { TestArea } from './test-area.ts'
import {
  SYNC_TYPES_OF, type HistoryChunk, type HistoryMessage, type HistoryNotice, type HistoryPort, type HistorySettings
} from './history-port.ts'
import type { HistorySyncType } from '../../contracts/index.ts'

/** Tells the company's open connection of notices (those its mode takes); false when none is open. */
type Emitter = (companyId: string, notices: HistoryNotice[]) => boolean

/** A chunk a test has a company's phone send. */
export interface TestHistoryChunk {
  syncType: HistorySyncType
  chunkOrder: number
  progress: number | null
  chunk: HistoryChunk
}

/**
 * The test double's history, as the simulator speaks it: a test has a company's phone announce
 * chunks (their notices reach its open connection, and reading one gives its content), keeps the
 * messages its phone holds for on-demand requests, and the files of history media messages.
 */
export class TestHistory {
  readonly #chunks = new Map<string, HistoryChunk>()
  /** Each company's phone: its messages by chat, oldest first, for requests for older ones. */
  readonly #phones = new Map<string, Map<string, HistoryMessage[]>>()
  readonly #files = new Map<string, Buffer>()
  readonly #emit: Emitter
  /** Requests for older messages each company made: chat and count. */
  readonly requests: { companyId: string, chat: string, count: number }[] = []

  constructor (emit: Emitter) {
    this.#emit = emit
  }

  /** The company's phone announces chunks; their notices, or undefined when no connection of it is open. */
  announce (companyId: string, chunks: TestHistoryChunk[], requestId?: string): HistoryNotice[] | undefined {
    const notices = chunks.map(({ syncType, chunkOrder, progress, chunk }) => {
      const id = createHash('sha256').update(randomBytes(16)).digest('hex')
      this.#chunks.set(id, chunk)
      return { id, syncType, chunkOrder, progress, pointer: { directPath: `/test/history/${id}` }, ...(requestId ? { requestId } : {}) }
    })
    return this.#emit(companyId, notices) ? notices : undefined
  }

  /** What the company's phone holds, for requests for older messages (by chat JID). */
  hold (companyId: string, chat: string, messages: HistoryMessage[]): void {
    const phone = this.#phones.get(companyId) ?? new Map<string, HistoryMessage[]>()
    phone.set(chat, [...messages].sort((a, b) => a.timestamp - b.timestamp))
    this.#phones.set(companyId, phone)
  }

  /** A history media message's file, downloadable by its direct path. */
  file (directPath: string, body: Buffer): void {
    this.#files.set(directPath, body)
  }

  read (id: string): HistoryChunk | undefined {
    return this.#chunks.get(id)
  }

  /** The phone answers a request with up to `count` messages older than the anchor, in an on_demand chunk. */
  older (companyId: string, chat: string, beforeMessageId: string, count: number): TestHistoryChunk {
    this.requests.push({ companyId, chat, count })
    const held = this.#phones.get(companyId)?.get(chat) ?? []
    const end = held.findIndex((message) => message.id === beforeMessageId)
    const older = held.slice(Math.max(0, (end === -1 ? 0 : end) - count), end === -1 ? 0 : end)
    const chunk = { chats: [{ jid: chat }], contacts: [], messages: older, lids: [] }
    return { syncType: 'on_demand', chunkOrder: 0, progress: 100, chunk }
  }

  fileOf (directPath: string | undefined): Buffer | undefined {
    return directPath ? this.#files.get(directPath) : undefined
  }
}

export function testHistoryPort (area: TestArea, settings: HistorySettings | undefined): HistoryPort {
  const { whatsapp, companyId } = area
  const chosen = settings ?? { mode: 'recent', days: null }
  return {
    settings: chosen,
    read: async (notice, take) => {
      const chunk = whatsapp.history.read(notice.id)
      if (!chunk) throw new Error(`no history chunk ${notice.id}`)
      await take(chunk)
    },
    requestOlder: async (anchor, count) => {
      await area.writable()
      const requestId = randomBytes(8).toString('hex').toUpperCase()
      const answer = whatsapp.history.older(companyId, anchor.chat, anchor.messageId, count)
      if (SYNC_TYPES_OF[chosen.mode].includes('on_demand')) {
        setImmediate(() => whatsapp.history.announce(companyId, [answer], requestId))
      }
      return requestId
    },
    downloadMedia: async (ref) => {
      const body = whatsapp.history.fileOf(ref.directPath)
      if (!body) throw new Error('WhatsApp no longer has this file')
      return Readable.from([body])
    }
  }
}
