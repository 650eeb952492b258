/** A change to a chat's state, as the number's devices share it (WhatsApp's app-state sync). */
export type ChatChange =
  | { kind: 'archive', archived: boolean }
  | { kind: 'pin', pinned: boolean }
  /** Muted until this Unix time in ms; null unmutes. */
  | { kind: 'mute', until: number | null }
  | { kind: 'read', read: boolean }
  | { kind: 'delete' }

/** The chat's latest message, which WhatsApp's archive, read and delete actions name as the range they cover. */
export interface LastMessageRef {
  id: string
  fromMe: boolean
  /** Unix seconds. */
  timestamp: number
  /** Who wrote it, in a group (an inbound group message needs it). */
  participant?: string
}

/**
 * A chat's state changed on another device of the number (the phone, WhatsApp Web): only what
 * changed is set. `deleted` means the chat was deleted there.
 */
export interface ChatEvent {
  jid: string
  archived?: boolean
  pinned?: boolean
  /** Unix ms the chat is muted until; null: unmuted. */
  mutedUntil?: number | null
  read?: boolean
  deleted?: boolean
  /** The chat's disappearing-messages timer (0: off), set by the contact or another device. */
  disappearingSeconds?: number
}

/** Chat state through the connection: app-state patches every device of the number shares, and the disappearing timer. */
export interface ChatPort {
  modify: (jid: string, change: ChatChange, lastMessage?: LastMessageRef) => Promise<void>
  /** Sets the chat's disappearing-messages timer (a protocol message to the chat; 0 turns it off). */
  setDisappearing: (jid: string, seconds: number) => Promise<void>
}
