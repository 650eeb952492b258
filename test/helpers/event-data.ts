import { randomBytes } from 'node:crypto'
import type { MessageEventData, PairingCodeEventData, QrEventData } from '../../contracts/index.ts'

/**
 * Whole `data` for tests that publish events themselves: Events.publish takes only what its type's
 * schema allows, so a test names what it cares about and these fill in the rest as a session would.
 */
export function messageData (overrides: Partial<MessageEventData> = {}): MessageEventData {
  return {
    messageId: `IN${randomBytes(8).toString('hex').toUpperCase()}`,
    phone: '79001234567',
    jid: '79001234567@s.whatsapp.net',
    lid: null,
    pushName: null,
    text: null,
    timestamp: new Date().toISOString(),
    offline: false,
    ...overrides
  }
}

export function qrData (qr: string): QrEventData {
  return { qr, qrDataUrl: 'data:image/png;base64,', qrTerminal: qr }
}

export function pairingCodeData (code: string): PairingCodeEventData {
  return { code, phoneNumber: '79001234567', expiresAt: new Date(Date.now() + 60_000).toISOString() }
}
