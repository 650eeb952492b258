/** A call's step as WhatsApp tells it (Baileys' `call` event). */
export interface CallEvent {
  id: string
  /** The caller, as WhatsApp names them (a phone JID or a LID), and their phone JID when told. */
  from: string
  callerPhone?: string
  status: 'offer' | 'ringing' | 'accept' | 'reject' | 'timeout' | 'terminate'
  video: boolean
  group: boolean
  groupJid?: string
  /** Delivered when the device came back online: the call is over, not to be rejected. */
  offline: boolean
  /** Unix seconds. */
  timestamp: number
}

/** Calls through the connection. */
export interface CallPort {
  reject: (callId: string, from: string) => Promise<void>
}
