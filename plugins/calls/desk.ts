import type { FastifyInstance } from 'fastify'
import { ErrorCode, userOfJid, type CallEventData, type CallRecord, type CallRejectReply } from '../../contracts/index.ts'
import { BoundedMap } from '../../core/bounded-map.ts'
import { GatewayError } from '../../core/errors.ts'
import { isoFromSeconds } from '../../core/time.ts'
import type { CallEvent, WaSocket } from '../session-pool/index.ts'
import { callSettingsOf, type CallStore } from './store.ts'

/** Calls a replica remembers as its connections told them (whom a rejection names, whether it still rings). */
const REMEMBERED_CALLS = 5_000
/** Idempotency scope of the text a caller is answered with: one per call, whichever replica holds the company. */
const CALL_REPLY_KEY = 'call-reply'
/** Steps after which a call rings no more. */
const RINGING = new Set(['offer', 'ringing'])

/** What the gateway says of a call's step, from what the connection told. */
export function eventDataOf (call: CallEvent): CallEventData {
  return {
    callId: call.id,
    from: call.from,
    phone: call.callerPhone ? userOfJid(call.callerPhone) : call.from.endsWith('@s.whatsapp.net') ? userOfJid(call.from) : null,
    lid: call.from.endsWith('@lid') ? call.from : null,
    video: call.video,
    groupId: call.groupJid ?? null,
    offline: call.offline,
    status: call.status,
    timestamp: isoFromSeconds(call.timestamp)
  }
}

/** A recorded call as the connection would tell it again (for a rejection after the holder changed). */
function callOfRecord (record: CallRecord & { creator: string }): CallEvent {
  return {
    id: record.callId,
    from: record.from,
    creator: record.creator,
    ...(record.phone ? { callerPhone: `${record.phone}@s.whatsapp.net` } : {}),
    status: record.status,
    video: record.video,
    group: record.groupId !== null,
    ...(record.groupId ? { groupJid: record.groupId } : {}),
    offline: record.offline,
    timestamp: Math.floor(Date.parse(record.offeredAt) / 1000)
  }
}

/**
 * What the holder does with calls: records each step (in the order told), publishes it as a `call`
 * event, and answers a ringing call as the company's settings say (declines it, texts the caller
 * once); a call told offline is over and is only reported. Rejections by the API come here too.
 */
export class CallDesk {
  readonly #app: FastifyInstance
  readonly #store: CallStore
  readonly #calls = new BoundedMap<string, CallEvent>(REMEMBERED_CALLS)
  /** The record's writes, in the order the steps came. */
  #writes: Promise<void> = Promise.resolve()

  constructor (app: FastifyInstance, store: CallStore) {
    this.#app = app
    this.#store = store
  }

  /** A step a holder's connection told. */
  told (companyId: string, socket: WaSocket, call: CallEvent): void {
    const key = `${companyId}/${call.id}`
    // Later steps name no group (Baileys keeps only video and group from the offer): the offer's is kept.
    const known = this.#calls.get(key)
    const step = { ...call, ...(known?.groupJid && !call.groupJid ? { groupJid: known.groupJid } : {}) }
    this.#calls.set(key, step)
    this.#write(() => this.#store.step({
      companyId,
      callId: step.id,
      caller: step.from,
      creator: step.creator,
      phone: step.callerPhone ? userOfJid(step.callerPhone) : eventDataOf(step).phone,
      lid: eventDataOf(step).lid,
      video: step.video,
      groupId: step.groupJid ?? null,
      offline: step.offline,
      status: step.status,
      at: new Date(step.timestamp * 1000)
    }))
    this.#publish(companyId, eventDataOf(step), `call:${companyId}:${step.id}:${step.status}`)
    if (step.status !== 'offer' || step.offline) return
    this.#answer(companyId, socket, step).catch((err: unknown) => {
      const expected = err instanceof GatewayError
      this.#app.log[expected ? 'info' : 'error']({ err, companyId, callId: step.id }, 'a ringing call was not answered as the settings say')
    })
  }

  /** Declines a call by the API: `rejected: false` when it rings no more. */
  async rejectByApi (companyId: string, callId: string): Promise<CallRejectReply> {
    const socket = this.#app.sessionPool.get(companyId)?.socket
    if (!socket) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} is not connected`)
    await this.#writes
    let call = this.#calls.get(`${companyId}/${callId}`)
    if (!call) {
      const record = await this.#store.get(companyId, callId)
      call = record ? callOfRecord(record) : undefined
    }
    if (!call) throw new GatewayError(ErrorCode.NOT_FOUND, `no call ${callId} to ${companyId} is known`)
    if (!RINGING.has(call.status) || call.offline) return { success: true, companyId, callId, rejected: false, status: call.status }
    await this.#reject(companyId, socket, call, 'api')
    return { success: true, companyId, callId, rejected: true, status: 'reject' }
  }

  /** Waits until every step told so far is in the record. */
  settled (): Promise<void> {
    return this.#writes
  }

  async #answer (companyId: string, socket: WaSocket, call: CallEvent): Promise<void> {
    const settings = await callSettingsOf(this.#app.orm.em.fork(), companyId)
    if (settings.rejectCalls) await this.#reject(companyId, socket, call, 'auto')
    if (settings.replyText) await this.#reply(companyId, call, settings.replyText)
  }

  async #reject (companyId: string, socket: WaSocket, call: CallEvent, by: 'auto' | 'api'): Promise<void> {
    await socket.calls.reject(call.id, call.creator)
    const rejected: CallEvent = { ...call, status: 'reject', timestamp: Math.floor(Date.now() / 1000) }
    this.#calls.set(`${companyId}/${call.id}`, rejected)
    this.#write(() => this.#store.rejected(companyId, call.id, by))
    this.#publish(companyId, { ...eventDataOf(rejected), rejectedBy: by }, `call:${companyId}:${call.id}:reject:${by}`)
    this.#app.log.info({ companyId, callId: call.id, by }, 'declined a call')
  }

  /** The caller's chat gets the text, once per call: through the one outbound path, under the company's budgets. */
  async #reply (companyId: string, call: CallEvent, text: string): Promise<void> {
    const epoch = this.#app.sessionPool.get(companyId)?.epoch
    if (epoch === undefined) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} is not held here any more`)
    const { phone, lid } = eventDataOf(call)
    const jid = call.callerPhone ?? call.from
    const sent = await this.#app.outbound.send({
      companyId,
      epoch,
      kind: 'text',
      recipient: phone ?? userOfJid(call.from),
      idempotencyKey: `${CALL_REPLY_KEY}:${call.id}`,
      details: { text, phone, lid },
      write: (socket) => socket.sendText(jid, text)
    }, (message) => ({ messageId: message.messageId }))
    this.#write(() => this.#store.replied(companyId, call.id, sent.messageId))
  }

  #publish (companyId: string, data: CallEventData, id: string): void {
    const epoch = this.#app.sessionPool.get(companyId)?.epoch
    this.#app.events.publish(companyId, 'call', data, { ...(epoch !== undefined ? { epoch } : {}), id })
  }

  #write (work: () => Promise<void>): void {
    this.#writes = this.#writes.then(work).catch((err: unknown) => this.#app.log.error({ err }, 'the calls record was not written'))
  }
}
