import { isLidUser, jidNormalizedUser, type WACallEvent } from '@whiskeysockets/baileys'
import type { BaileysArea } from './baileys-area.ts'
import { CALL_STATUSES, type CallEvent, type CallPort, type CallStatus } from './calls-port.ts'

const REPORTED = new Set<string>(CALL_STATUSES)

/**
 * Calls in the Baileys adapter: each `call` event Baileys emits (its `handleCall` reads the first
 * child of a `<call>` stanza) becomes a CallEvent; a LID caller without `caller_pn` is given the phone
 * the connection learned for the LID. Events go out in the order WhatsApp sent them.
 */
export function callPortOf (area: BaileysArea): CallPort {
  const { sock, emit, log } = area
  let inOrder = Promise.resolve()
  sock.ev.on('call', (calls) => {
    const reported = calls.filter((call) => REPORTED.has(call.status))
    if (reported.length === 0) return
    inOrder = inOrder
      .then(async () => { emit('calls', await Promise.all(reported.map((call) => callEventOf(area, call)))) })
      .catch((err: unknown) => log.error({ err }, 'a call event could not be reported'))
  })
  return {
    reject: async (callId, creator) => { await sock.rejectCall(callId, creator) }
  }
}

async function callEventOf ({ sock, log }: BaileysArea, call: WACallEvent): Promise<CallEvent> {
  const from = jidNormalizedUser(call.from)
  let callerPhone = call.callerPn ? jidNormalizedUser(call.callerPn) : undefined
  if (!callerPhone && isLidUser(from)) {
    callerPhone = await sock.signalRepository.lidMapping.getPNForLID(from)
      .then((phone) => phone ? jidNormalizedUser(phone) : undefined)
      .catch((err: unknown) => {
        log.warn({ err, lid: from }, 'the phone of a calling LID could not be read')
        return undefined
      })
  }
  return {
    id: call.id,
    from,
    creator: call.from,
    ...(callerPhone ? { callerPhone } : {}),
    status: call.status as CallStatus,
    video: call.isVideo ?? false,
    group: call.isGroup ?? false,
    ...(call.groupJid ? { groupJid: call.groupJid } : {}),
    offline: call.offline,
    timestamp: Math.floor(call.date.getTime() / 1000)
  }
}
