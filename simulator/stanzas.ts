import { randomBytes } from 'node:crypto'
import { S_WHATSAPP_NET, type BinaryNode } from '@whiskeysockets/baileys'

/** Now in Unix seconds, as WhatsApp stamps stanzas and messages. */
export const unixSeconds = () => Math.floor(Date.now() / 1000)
/** Now as a stanza's `t` attribute. */
export const unixNow = () => String(unixSeconds())
/** An id for a stanza the server starts; the client's answer carries it back. */
export const stanzaId = () => randomBytes(8).toString('hex')

/** The answer to an `iq`: its id ties it to the query. */
export function iqResult (iq: BinaryNode): BinaryNode {
  return { tag: 'iq', attrs: { from: S_WHATSAPP_NET, type: 'result', id: iq.attrs.id } }
}

/** The error answer to an `iq` the server cannot make sense of. */
export function iqBadRequest (iq: BinaryNode): BinaryNode {
  return {
    tag: 'iq',
    attrs: { from: S_WHATSAPP_NET, type: 'error', id: iq.attrs.id },
    content: [{ tag: 'error', attrs: { code: '400', text: 'bad-request' } }]
  }
}

/** An `iq` refused with WhatsApp's error code and text (`<error code="403" text="forbidden"/>`). */
export function iqError (iq: BinaryNode, code: number, text: string): BinaryNode {
  return {
    tag: 'iq',
    attrs: { from: iq.attrs.to ?? S_WHATSAPP_NET, type: 'error', id: iq.attrs.id },
    content: [{ tag: 'error', attrs: { code: String(code), text } }]
  }
}
