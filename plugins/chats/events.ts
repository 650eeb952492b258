import type { EventData } from '../../contracts/index.ts'
import type { ChatEvent } from '../session-pool/index.ts'
import type { StateChange } from './store.ts'

/** Another device's change as the `chat_update` event says it (only what changed) and as the chat's state stores it. */
export function eventDataOf (chat: string, event: ChatEvent): { data: EventData<'chat_update'>, change: StateChange } {
  if (event.deleted) return { data: { chat, deleted: true }, change: { deleted: true } }
  const data: EventData<'chat_update'> = { chat }
  const change: StateChange = {}
  if (event.archived !== undefined) data.archived = change.archived = event.archived
  if (event.pinned !== undefined) data.pinned = change.pinned = event.pinned
  if (event.mutedUntil !== undefined) {
    const until = event.mutedUntil === null ? null : new Date(event.mutedUntil)
    // A time JavaScript cannot show (WhatsApp's "always" may be one) is kept as no end known.
    change.mutedUntil = until && Number.isFinite(until.getTime()) ? until : null
    data.mutedUntil = change.mutedUntil?.toISOString() ?? null
  }
  if (event.read !== undefined) data.read = change.read = event.read
  if (event.disappearingSeconds !== undefined) data.disappearingSeconds = change.disappearingSeconds = event.disappearingSeconds
  return { data, change }
}
