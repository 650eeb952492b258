import { proto } from '@whiskeysockets/baileys'
import type { HistoryChat, PhoneHistory, PlannedChunk, Segment } from './history.ts'

const SyncType = proto.HistorySync.HistorySyncType

export interface PlanOptions {
  /** The most messages one chunk carries (a chat's run is split between chunks beyond it). */
  messagesPerChunk: number
  /** Messages newer than this many days are the RECENT sync; older ones only a full sync sends. */
  recentDays: number
  /** The companion asked for the full history (`requireFullSync` in its registration). */
  full: boolean
  /** Unix seconds. */
  now: number
}

/** The chats the INITIAL_BOOTSTRAP chunk carries, and how many of each one's last messages. */
const BOOTSTRAP_CHATS = 20
const BOOTSTRAP_MESSAGES = 5

/**
 * The chunks a newly linked device gets, in order (PROTOCOL.md § 20): INITIAL_BOOTSTRAP (the most
 * recent chats, their last few messages), PUSH_NAME, RECENT (the rest of the recent window; chats
 * with nothing recent come as conversations without messages), then FULL (older messages) when the
 * companion asked for it. Each message is in exactly one chunk; a chat's messages go newest first
 * across the chunks. Only index ranges are planned: chunks are built when sent.
 */
export function planInitialSync (history: PhoneHistory, options: PlanOptions): PlannedChunk[] {
  const cutoff = options.now - options.recentDays * 86_400
  const chats = [...history.chats.values()].sort((a, b) => lastTimestamp(b) - lastTimestamp(a))
  // Per chat: the index below which its messages are older than the recent window, and how far down it was sent.
  const firstRecent = new Map(chats.map((chat) => [chat, firstIndexAtOrAfter(chat, cutoff)]))
  const sentDownTo = new Map(chats.map((chat) => [chat, chat.messages.length]))

  const bootstrap: Segment[] = []
  for (const chat of chats.slice(0, BOOTSTRAP_CHATS)) {
    const to = chat.messages.length
    const from = Math.max(firstRecent.get(chat)!, to - BOOTSTRAP_MESSAGES)
    bootstrap.push({ chat, from, to })
    sentDownTo.set(chat, from)
  }
  const chunks: PlannedChunk[] = [{ syncType: SyncType.INITIAL_BOOTSTRAP, chunkOrder: 0, progress: 100, segments: bootstrap }]

  chunks.push({ syncType: SyncType.PUSH_NAME, chunkOrder: 0, progress: 100, segments: [], pushNames: pushNamesOf(chats) })

  // Chats the bootstrap left out, and those it carried only the last messages of.
  const inBootstrap = new Set(bootstrap.map((segment) => segment.chat))
  const recent = chats.filter((chat) => !inBootstrap.has(chat) || sentDownTo.get(chat)! > firstRecent.get(chat)!)
  chunks.push(...pack(SyncType.RECENT, recent.map((chat) => ({ chat, from: firstRecent.get(chat)!, to: sentDownTo.get(chat)! })), options))
  if (options.full) {
    const older = chats.filter((chat) => firstRecent.get(chat)! > 0).map((chat) => ({ chat, from: 0, to: firstRecent.get(chat)! }))
    chunks.push(...pack(SyncType.FULL, older, options))
  }
  return chunks
}

/**
 * Up to `count` messages of a chat older than a message (by id, else by time: Baileys' on-demand
 * request names both), newest first: the answer to HISTORY_SYNC_ON_DEMAND.
 */
export function planOnDemand (
  history: PhoneHistory, request: { chatJid: string, oldestMsgId?: string, oldestMsgTimestampMs?: number, count: number }, sessionId: string
): PlannedChunk {
  const chat = history.chats.get(request.chatJid) ??
    [...history.chats.values()].find((candidate) => candidate.pnJid === request.chatJid || candidate.lidJid === request.chatJid)
  const base = { syncType: SyncType.ON_DEMAND, chunkOrder: 0, progress: 100, peerDataRequestSessionId: sessionId }
  if (!chat) return { ...base, segments: [] }
  let to = chat.messages.findIndex((message) => message.id === request.oldestMsgId)
  if (to < 0) to = firstIndexAtOrAfter(chat, Math.floor((request.oldestMsgTimestampMs ?? 0) / 1000))
  return { ...base, segments: [{ chat, from: Math.max(0, to - request.count), to }] }
}

/** Segments packed into chunks of at most `messagesPerChunk` messages; the last chunk's progress is 100. */
function pack (syncType: proto.HistorySync.HistorySyncType, segments: Segment[], options: PlanOptions): PlannedChunk[] {
  const chunks: Segment[][] = [[]]
  let room = options.messagesPerChunk
  for (const segment of segments) {
    let to = segment.to
    // A chat with nothing left to send still comes, as a conversation without messages (the chat list is whole).
    if (to === segment.from) chunks.at(-1)!.push(segment)
    while (to > segment.from) {
      if (room === 0) {
        chunks.push([])
        room = options.messagesPerChunk
      }
      const from = Math.max(segment.from, to - room)
      chunks.at(-1)!.push({ chat: segment.chat, from, to })
      room -= to - from
      to = from
    }
  }
  return chunks.map((chunk, index) => ({
    syncType,
    chunkOrder: index,
    progress: Math.floor(100 * (index + 1) / chunks.length),
    segments: chunk
  }))
}

/** The names of the person chats' contacts, and of the group participants whose messages carry one (their latest). */
function pushNamesOf (chats: HistoryChat[]): { id: string, pushname: string }[] {
  const names = new Map<string, string>()
  for (const chat of chats) {
    if (chat.name && chat.pnJid) names.set(chat.pnJid, chat.name)
    for (const message of chat.messages) {
      if (message.participant && message.pushName) names.set(message.participant, message.pushName)
    }
  }
  return [...names].map(([id, pushname]) => ({ id, pushname }))
}

const lastTimestamp = (chat: HistoryChat) => chat.messages.at(-1)?.timestamp ?? 0

/** The first message at or after `at` (Unix seconds), by binary search: messages are oldest first. */
function firstIndexAtOrAfter (chat: HistoryChat, at: number): number {
  let low = 0
  let high = chat.messages.length
  while (low < high) {
    const middle = (low + high) >> 1
    if (chat.messages[middle].timestamp < at) low = middle + 1
    else high = middle
  }
  return low
}
