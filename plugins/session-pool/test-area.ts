import type { Sent, TestWhatsApp } from './test-socket.ts'
import type { SocketEvents } from './socket-port.ts'

/** What a feature area of the test double (test-polls.ts, test-calls.ts, …) is given by its socket. */
export interface TestArea {
  whatsapp: TestWhatsApp
  companyId: string
  /** The linked number (E.164 digits), once linked. */
  phone: () => string | undefined
  /** Waits until WhatsApp takes a write (open, within the lease's deadline, not stalled; a group the number may write in). */
  writable: (jid?: string) => Promise<void>
  emitLater: <K extends keyof SocketEvents>(event: K, payload: SocketEvents[K]) => void
  /** Records a send (what tests read with TestWhatsApp.sentTo). */
  record: (sent: Sent) => void
}
