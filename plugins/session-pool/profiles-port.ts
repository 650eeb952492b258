/** The number's own profile, contacts' profiles and the block list, through the connection. */
export interface ProfilePort {
  blocklist: () => Promise<string[]>
}

/** The block list changed (on this or another device of the number). */
export interface BlocklistEvent {
  action: 'block' | 'unblock' | 'set'
  jids: string[]
}
