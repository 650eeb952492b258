import { randomBytes } from 'node:crypto'
import { getBinaryNodeChild, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, userJid, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'
import type { Mailbox } from './mailbox.ts'
import { stanzaId, unixNow, unixSeconds } from './stanzas.ts'

/** What the caller's side does after the offer: hang up, give up ringing, or answer/decline on another of the callee's devices. */
export const CALL_STEPS = ['terminate', 'timeout', 'accept', 'reject'] as const
export type CallStep = (typeof CALL_STEPS)[number]

export interface CallOptions {
  /** The caller's phone number. */
  from: string
  /** The account (phone number) whose linked devices ring. */
  to: string
  video?: boolean
  /** The caller is named by LID (`<lid>@lid`), as WhatsApp now does; its phone goes in `caller_pn` unless `hidePhone`. */
  byLid?: boolean
  hidePhone?: boolean
  /** A group call: the group's JID. */
  group?: string
}

/** A call as the simulator keeps it: what a test reads back (whether a linked device rejected it, and which). */
export interface SimulatedCall {
  id: string
  from: string
  to: string
  video: boolean
  byLid: boolean
  group: string | null
  state: 'ringing' | 'accepted' | 'rejected' | 'terminated' | 'timeout'
  /** The linked device that rejected it (`<phone>:<device>`), when one did. */
  rejectedBy: string | null
  at: number
  /** Live devices the offer reached, and devices it was kept for (offline). */
  devices: number
  queued: number
}

const ENDED: Record<CallStep, SimulatedCall['state']> = {
  terminate: 'terminated', timeout: 'timeout', accept: 'accepted', reject: 'rejected'
}

/**
 * Voice and video calls to linked devices (PROTOCOL.md § Calls): a simulated contact offers a call
 * (`<call><offer>`), every device of the callee gets it (or at its next login, marked offline), and
 * the call ends as the test says (`<terminate>`, with `reason="timeout"` when nobody answered,
 * `<accept>`, `<reject>`). A device rejects a call with `<call><reject>`: it is answered with an
 * `<ack class="call">` and recorded, and the callee's other devices are told.
 */
export class CallService {
  readonly #calls = new Map<string, SimulatedCall>()
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #record: Recorder

  constructor (directory: Directory, devices: LinkedDevices, mailbox: Mailbox, record: Recorder) {
    this.#directory = directory
    this.#devices = devices
    this.#mailbox = mailbox
    this.#record = record
  }

  /** The contact `from` calls the account `to`: an offer to each of its linked devices. Undefined when it has none. */
  call (options: CallOptions): SimulatedCall | undefined {
    const callee = this.#directory.account(options.to)
    if (callee.knownDevices.size === 0) return undefined
    const call: SimulatedCall = {
      id: randomBytes(16).toString('hex').toUpperCase(),
      from: options.from,
      to: options.to,
      video: options.video ?? false,
      byLid: options.byLid ?? false,
      group: options.group ?? null,
      state: 'ringing',
      rejectedBy: null,
      at: unixSeconds(),
      devices: 0,
      queued: 0
    }
    this.#calls.set(call.id, call)
    const caller = this.#directory.account(options.from)
    const attrs: Record<string, string> = {
      'call-id': call.id,
      'call-creator': this.#creatorOf(call),
      ...(call.byLid && !options.hidePhone ? { caller_pn: userJid(caller.phone) } : {}),
      ...(call.group ? { type: 'group', 'group-jid': call.group } : {})
    }
    const media: BinaryNode[] = [{ tag: 'audio', attrs: { enc: 'opus', rate: '16000' } }]
    if (call.video) media.push({ tag: 'video', attrs: { enc: 'vp8', dec: 'vp8' } })
    const { live, kept } = this.#deliver(call, { tag: 'offer', attrs, content: media })
    call.devices = live
    call.queued = kept
    this.#record('call', `${call.id} ${call.video ? 'video' : 'voice'} from ${call.from} to ${call.to}: ${live} devices, ${kept} kept`)
    return call
  }

  /** The call ends on the caller's side (or another device of the callee answers or declines it): the devices are told. */
  step (callId: string, step: CallStep): SimulatedCall | undefined {
    const call = this.#calls.get(callId)
    if (!call) return undefined
    const attrs = { 'call-id': call.id, 'call-creator': this.#creatorOf(call), ...(step === 'timeout' ? { reason: 'timeout' } : {}) }
    this.#deliver(call, { tag: step === 'timeout' ? 'terminate' : step, attrs })
    call.state = ENDED[step]
    this.#record('call', `${call.id} ${step}`)
    return call
  }

  get (callId: string): SimulatedCall | undefined {
    return this.#calls.get(callId)
  }

  /** The calls made to the account `phone`, oldest first. */
  callsTo (phone: string): SimulatedCall[] {
    return [...this.#calls.values()].filter((call) => call.to === phone)
  }

  /**
   * A `<call>` from a linked device: a `<reject>` declines a call made to its account (Baileys'
   * `rejectCall`, which waits for an answer carrying its stanza id). Anything else is acknowledged and ignored.
   */
  fromDevice (connection: Connection, node: BinaryNode): void {
    const reject = getBinaryNodeChild(node, 'reject')
    const call = reject ? this.#calls.get(reject.attrs['call-id'] ?? '') : undefined
    const device = connection.device
    const ack = { id: node.attrs.id, class: 'call', ...(reject ? { type: 'reject' } : {}), from: node.attrs.to ?? '' }
    connection.send({ tag: 'ack', attrs: ack })
    if (!reject || !device) return
    if (!call || call.to !== device.user || call.state !== 'ringing') {
      this.#record('call', `reject of ${reject.attrs['call-id'] ?? '?'} by ${deviceName(device)}: no such call ringing there`)
      return
    }
    call.state = 'rejected'
    call.rejectedBy = deviceName(device)
    this.#record('call', `${call.id} rejected by ${call.rejectedBy}`)
    // The callee's other devices stop ringing.
    this.#deliver(call, { tag: 'reject', attrs: { 'call-id': call.id, 'call-creator': this.#creatorOf(call) } }, call.rejectedBy)
  }

  /** How the call names its caller: by LID or by phone JID. */
  #creatorOf (call: SimulatedCall): string {
    const caller = this.#directory.account(call.from)
    return call.byLid ? `${caller.lid}@lid` : userJid(caller.phone)
  }

  /** One `<call>` stanza with `child` to each device of the callee (but `except`), kept for those offline. */
  #deliver (call: SimulatedCall, child: BinaryNode, except?: string): { live: number, kept: number } {
    const stanza = (): BinaryNode => ({
      tag: 'call',
      attrs: { from: this.#creatorOf(call), id: stanzaId(), t: unixNow() },
      content: [child]
    })
    let live = 0
    let kept = 0
    for (const device of this.#directory.account(call.to).knownDevices) {
      const name = deviceName({ user: call.to, device })
      if (name === except) continue
      const connection = this.#devices.get(name)
      if (connection) {
        this.#mailbox.sendCall(connection, stanza())
        live++
      } else {
        this.#mailbox.keep(name, { call: stanza() })
        kept++
      }
    }
    return { live, kept }
  }
}
