import type { FastifyInstance } from 'fastify'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import type { Quoted } from './socket-port.ts'

/** A chat as a command names it: by phone (any notation) or by LID JID, with what is known of the other. */
export interface Chat {
  /** Where WhatsApp delivers: the phone JID, or the LID JID when the contact is known only by LID. */
  jid: string
  /** E.164 digits, when known. */
  phone: string | null
  lid: string | null
  /** The budgets' and events' name of the contact: the phone, else the LID's user part. */
  recipient: string
}

const LID_JID = /^\d{1,40}@lid$/

/** Resolves a command's `phone` (a phone in any notation, a phone JID or a LID JID) to one contact. */
export async function chatOf (app: FastifyInstance, companyId: string, input: string): Promise<Chat> {
  if (input.endsWith('@lid')) {
    if (!LID_JID.test(input)) throw new GatewayError(ErrorCode.INVALID_PHONE, `${input} is not a LID JID (<digits>@lid)`)
    const phone = await app.conversations.phoneOfLid(companyId, input) ?? null
    return { jid: input, phone, lid: input, recipient: phone ?? input.split('@')[0] }
  }
  const phone = app.phone.normalize(input)
  return { jid: app.phone.toJid(phone), phone, lid: await app.conversations.lidOfPhone(companyId, phone) ?? null, recipient: phone }
}

/** The message a reply quotes: one the history has (WhatsApp shows its text in the reply). */
export async function quotedOf (app: FastifyInstance, companyId: string, messageId: string | undefined, strict: boolean) {
  if (!messageId) return undefined
  const known = await app.conversations.message(companyId, messageId)
  if (!known) {
    if (!strict) return { id: messageId, fromMe: false } satisfies Quoted
    throw new GatewayError(ErrorCode.NOT_FOUND, `no message ${messageId} in the history of ${companyId} to reply to`)
  }
  return { id: messageId, fromMe: known.direction === 'out', ...(known.text ? { text: known.text } : {}) } satisfies Quoted
}
