import { randomBytes } from 'node:crypto'
import type { CallEvent, CallPort, CallStatus } from './calls-port.ts'
import type { TestArea } from './test-area.ts'
import { lidOf, phoneJid } from './test-group-state.ts'
import type { SocketEvents } from './socket-port.ts'

/** A call a test made to a company, as the double keeps it. */
export interface TestCall {
  companyId: string
  event: CallEvent
  /** Set when the company's connection declined it. */
  rejectedAt?: number
}

export interface TestCallOptions {
  /** The caller's phone number. */
  from: string
  video?: boolean
  /** Named by LID, its phone told as caller_pn unless `hidePhone`. */
  byLid?: boolean
  hidePhone?: boolean
  /** A group call: the group's JID. */
  group?: string
  /** Told as WhatsApp tells calls made while the device was offline (at login): over, not to be declined. */
  offline?: boolean
}

type Emitter = <K extends keyof SocketEvents>(companyId: string, event: K, payload: SocketEvents[K]) => boolean

/**
 * The test double's calls, as the simulator speaks them: a test rings a company (the offer reaches its
 * open connection), ends the call, and reads back whether the company declined it. Rejecting a call
 * the company was not rung, or one that rings no more, is accepted and changes nothing, as WhatsApp does.
 */
export class TestCalls {
  readonly #calls = new Map<string, TestCall>()
  readonly #emit: Emitter

  constructor (emit: Emitter) {
    this.#emit = emit
  }

  /** A contact calls the company; the call's id, or undefined when no connection of the company is open. */
  ring (companyId: string, options: TestCallOptions): string | undefined {
    const lid = `${lidOf(options.from)}@lid`
    const from = options.byLid ? lid : phoneJid(options.from)
    const event: CallEvent = {
      id: randomBytes(16).toString('hex').toUpperCase(),
      from,
      creator: from,
      ...(options.byLid && options.hidePhone ? {} : { callerPhone: phoneJid(options.from) }),
      status: 'offer',
      video: options.video ?? false,
      group: options.group !== undefined,
      ...(options.group ? { groupJid: options.group } : {}),
      offline: options.offline ?? false,
      timestamp: Math.floor(Date.now() / 1000)
    }
    if (!this.#emit(companyId, 'calls', [event])) return undefined
    this.#calls.set(event.id, { companyId, event })
    return event.id
  }

  /** The call's next step (the caller hangs up, nobody answers, another device answers or declines). */
  step (callId: string, status: Exclude<CallStatus, 'offer'>): boolean {
    const call = this.#calls.get(callId)
    if (!call) return false
    call.event = { ...call.event, status, timestamp: Math.floor(Date.now() / 1000) }
    return this.#emit(call.companyId, 'calls', [{ ...call.event }])
  }

  get (callId: string): TestCall | undefined {
    return this.#calls.get(callId)
  }

  /** The company's connection declines a call it was rung. */
  rejected (companyId: string, callId: string, creator: string): void {
    const call = this.#calls.get(callId)
    if (!call || call.companyId !== companyId || call.event.creator !== creator || call.event.status !== 'offer') return
    call.event = { ...call.event, status: 'reject' }
    call.rejectedAt = Date.now()
  }
}

export function testCallPort (area: TestArea): CallPort {
  return {
    reject: async (callId, creator) => {
      await area.writable()
      area.whatsapp.calls.rejected(area.companyId, callId, creator)
    }
  }
}
