/** A chat's state changed on another device of the number (archive, pin, mute, read, deleted, timer). */
export interface ChatEvent {
  jid: string
}

/** Chat state through the connection. */
export interface ChatPort {
  archive: (jid: string, archived: boolean) => Promise<void>
}
