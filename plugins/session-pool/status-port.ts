import type { InboundMessage } from './socket-port.ts'

/** A contact's status post, as it arrives from `status@broadcast`. */
export interface InboundStatus extends Omit<InboundMessage, 'from'> {
  /** Who posted it. */
  from: string
}

/** Status posts through the connection. */
export interface StatusPort {
  /** Posts to `statusJidList` (the company's own devices see it too). */
  postText: (text: string, statusJidList: string[]) => Promise<{ messageId: string, timestamp: number }>
}
