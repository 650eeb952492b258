import type { BaileysEventMap, ChatModification } from '@whiskeysockets/baileys'
import type { BaileysArea } from './baileys-area.ts'
import { patchAppState } from './baileys-app-state.ts'
import { isEphemeralSetting } from './baileys-groups.ts'
import type { ChatChange, ChatEvent, ChatPort, LastMessageRef } from './chats-port.ts'

/** Baileys echoes a device's own change (emitOwnEvents) soon after making it; an echo expected longer is forgotten. */
const ECHO_MS = 30_000

type Flag = Exclude<keyof ChatEvent, 'jid'>
interface Echo { jid: string, flag: Flag, value: unknown, until: number }

/**
 * Chat state on Baileys: archive, pin, mute, read and delete are app-state patches (`chatModify`,
 * which first syncs the collection, then writes a patch under the app-state key the phone shared);
 * the timer is a protocol message to the chat. Baileys' `chats.update`/`chats.delete` become `chats`
 * events, but a change this device made itself comes back from Baileys too: it is dropped, so the
 * events say what other devices of the number did.
 */
export function chatPortOf (area: BaileysArea): ChatPort {
  const { sock } = area
  const echoes: Echo[] = []
  /** Runs an own change expecting its echo; a change that failed has none to expect. */
  const expecting = async (jid: string, flag: Flag, value: unknown, change: () => Promise<unknown>) => {
    const echo: Echo = { jid, flag, value, until: Date.now() + ECHO_MS }
    echoes.push(echo)
    try {
      await change()
    } catch (err) {
      const index = echoes.indexOf(echo)
      if (index >= 0) echoes.splice(index, 1)
      throw err
    }
  }
  /** Whether this flag's value is the echo of an own change (consumed when it is). */
  const isEcho = (jid: string, flag: Flag, value: unknown) => {
    const now = Date.now()
    for (let index = echoes.length - 1; index >= 0; index--) if (echoes[index].until < now) echoes.splice(index, 1)
    const index = echoes.findIndex((echo) => echo.jid === jid && echo.flag === flag && echo.value === value)
    if (index >= 0) echoes.splice(index, 1)
    return index >= 0
  }

  // A contact's (or another device's) disappearing-timer message changes the chat: no message of the
  // conversation; Baileys reports it as the chat's ephemeralExpiration in chats.update.
  area.claim(isEphemeralSetting)
  sock.ev.on('chats.update', (updates) => {
    const events = updates.map((update) => chatEventOf(update)).flatMap((event) => {
      const kept = Object.fromEntries(Object.entries(event).filter(([flag, value]) =>
        flag === 'jid' || !isEcho(event.jid, flag as Flag, value))) as ChatEvent
      return Object.keys(kept).length > 1 ? [kept] : []
    })
    if (events.length > 0) area.emit('chats', events)
  })
  sock.ev.on('chats.delete', (jids) => {
    const events = jids.filter((jid) => !isEcho(jid, 'deleted', true)).map((jid): ChatEvent => ({ jid, deleted: true }))
    if (events.length > 0) area.emit('chats', events)
  })

  return {
    modify: async (jid, change, lastMessage) => {
      const [flag, value] = echoOf(change)
      await expecting(jid, flag, value, () => patchAppState(sock, () => sock.chatModify(modificationOf(change, jid, lastMessage), jid)))
    },
    setDisappearing: (jid, seconds) =>
      expecting(jid, 'disappearingSeconds', seconds, () => area.send(jid, { disappearingMessagesInChat: seconds }))
  }
}

/** What a change will look like when Baileys echoes it. */
function echoOf (change: ChatChange): [Flag, unknown] {
  switch (change.kind) {
    case 'archive': return ['archived', change.archived]
    case 'pin': return ['pinned', change.pinned]
    case 'mute': return ['mutedUntil', change.until]
    case 'read': return ['read', change.read]
    case 'delete': return ['deleted', true]
  }
}

function modificationOf (change: ChatChange, jid: string, lastMessage: LastMessageRef | undefined): ChatModification {
  const lastMessages = lastMessage
    ? [{
        key: { remoteJid: jid, id: lastMessage.id, fromMe: lastMessage.fromMe, participant: lastMessage.participant },
        messageTimestamp: lastMessage.timestamp
      }]
    : []
  switch (change.kind) {
    case 'archive': return { archive: change.archived, lastMessages }
    case 'pin': return { pin: change.pinned }
    case 'mute': return { mute: change.until }
    case 'read': return { markRead: change.read, lastMessages }
    case 'delete': return { delete: true, lastMessages }
  }
}

/**
 * A chat's state from Baileys' `chats.update`: an app-state action (archive, pin, mute, read: an
 * unread count of 0 or -1) or a disappearing timer. A positive unread count is a message arriving
 * and is no state change here.
 */
function chatEventOf (update: BaileysEventMap['chats.update'][number]): ChatEvent {
  const event: ChatEvent = { jid: update.id! }
  if (typeof update.archived === 'boolean') event.archived = update.archived
  if (update.pinned !== undefined) event.pinned = update.pinned !== null
  if (update.muteEndTime !== undefined) event.mutedUntil = update.muteEndTime === null ? null : Number(update.muteEndTime)
  if (update.unreadCount === 0 || update.unreadCount === -1) event.read = update.unreadCount === 0
  if (update.ephemeralExpiration !== undefined) event.disappearingSeconds = update.ephemeralExpiration ?? 0
  return event
}
