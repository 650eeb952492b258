/** Which picture: WhatsApp keeps a full one (`image`, up to 640 px) and a small one (`preview`, 96 px). */
export type PictureQuality = 'image' | 'preview'

/** A contact's (or the number's own) about text, and when it was set (Unix seconds; null when WhatsApp does not say). */
export interface AboutText {
  /** null: none set, or hidden from the company's number by the contact's privacy settings. */
  text: string | null
  setAt: number | null
}

/** A business account's profile, as WhatsApp serves it (`w:biz`). */
export interface BusinessProfile {
  description: string
  category: string | null
  email: string | null
  websites: string[]
  address: string | null
}

/**
 * The number's own profile, contacts' profiles and the block list, through the connection. Every
 * call is one query to WhatsApp and throws WhatsAppRefusal (socket-port.ts) when WhatsApp says no:
 * 404 no picture, 401 a picture hidden by the contact's privacy settings.
 */
export interface ProfilePort {
  /**
   * The number's own name as its phone shows it to others (its push name), when WhatsApp told the
   * device: the app-state setting (this device's or another's change), or the name on its own messages.
   */
  ownName: () => string | null
  /** A picture's URL on WhatsApp's servers (it expires: `oe=` carries the expiry in hex Unix seconds). */
  pictureUrl: (jid: string, quality: PictureQuality) => Promise<string>
  about: (jid: string) => Promise<AboutText>
  /** undefined: not a business account. */
  businessProfile: (jid: string) => Promise<BusinessProfile | undefined>
  setAbout: (text: string) => Promise<void>
  /** Sets the number's own name: an app-state setting its other devices sync (`ownName` answers it once made). */
  setName: (name: string) => Promise<void>
  /** Sets the number's own picture (the connection scales and re-encodes it as WhatsApp wants: a JPEG of at most 640 px). */
  setPicture: (image: Buffer) => Promise<void>
  removePicture: () => Promise<void>
  /** Blocks or unblocks a contact (a phone or LID JID); the change is also emitted as a `blocklist` event. */
  setBlocked: (jid: string, blocked: boolean) => Promise<void>
  /** The blocked contacts' JIDs: phone JIDs where the connection knows the phone, else LID JIDs. */
  blocklist: () => Promise<string[]>
}

/** A contact (or the number itself) set or removed its picture: WhatsApp's `picture` notification; any URL of the old one is stale. */
export interface PictureChange {
  /** The phone JID (or LID JID) whose picture changed. */
  jid: string
  removed: boolean
}

/** The block list changed: by this connection, or on another device of the number (its phone). */
export interface BlocklistEvent {
  action: 'block' | 'unblock'
  /** Phone JIDs where the connection knows the phone, else LID JIDs. */
  jids: string[]
  /** Whether another device of the number made the change (this connection's own changes are emitted too). */
  otherDevice: boolean
}
