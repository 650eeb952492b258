/** A call's steps as the gateway reports them; Baileys' call-setup signalling (preaccept, transport, relaylatency) is left out. */
export const CALL_STATUSES = ['offer', 'ringing', 'accept', 'reject', 'timeout', 'terminate'] as const
export type CallStatus = (typeof CALL_STATUSES)[number]

/** A call's step as WhatsApp tells it (Baileys' `call` event). */
export interface CallEvent {
  id: string
  /** The caller as WhatsApp names them, without a device: a phone JID or a LID JID (the caller's chat). */
  from: string
  /** The `call-creator` exactly as WhatsApp gave it: what a rejection must name. */
  creator: string
  /** The caller's phone JID, when WhatsApp told it (`caller_pn`) or the connection knows the LID's phone. */
  callerPhone?: string
  status: CallStatus
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
  /** Declines a ringing call (Baileys' `rejectCall`): `creator` is the offer's `call-creator`. */
  reject: (callId: string, creator: string) => Promise<void>
}
