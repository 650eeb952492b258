import type { ChatChange, ChatEvent, ChatPort } from './chats-port.ts'
import type { SocketEvents } from './socket-port.ts'
import type { TestArea } from './test-area.ts'

/** The disappearing timers WhatsApp offers (off, 24 hours, 7 days, 90 days). */
const TIMERS = new Set([0, 86_400, 604_800, 7_776_000])

/** What a number's devices agreed on a chat (what its phone shows). */
export interface TestChatState {
  archived: boolean
  pinned: boolean
  mutedUntil: number | null
  read: boolean
  disappearingSeconds: number
}

interface ChatListener {
  emitLater: <K extends keyof SocketEvents>(event: K, payload: SocketEvents[K]) => void
}

/**
 * Chat state in the test double, as WhatsApp's app-state sync keeps it for a number (the simulator's
 * app-state.ts): a device's own change is stored and not told back to it; the phone's changes
 * (`phoneChanges`) and a contact's timer (`contactSetsTimer`) reach the number's open connections as
 * `chats` events in the Baileys adapter's shape (baileys-chats.ts), only what changed.
 */
export class TestChats {
  readonly #chats = new Map<string, Map<string, TestChatState>>()
  readonly #reach: (phone: string) => ChatListener[]

  constructor (reach: (phone: string) => ChatListener[]) {
    this.#reach = reach
  }

  /** The chat as the number's phone shows it; undefined once deleted or never touched. */
  get (phone: string, jid: string): TestChatState | undefined {
    const state = this.#chats.get(phone)?.get(jid)
    return state ? { ...state } : undefined
  }

  /** The number's phone (another device) changes a chat: the number's open connections hear of it. */
  phoneChanges (phone: string, jid: string, change: ChatChange): void {
    this.apply(phone, jid, change)
    this.#tell(phone, change.kind === 'delete' ? { jid, deleted: true } : { jid, ...flagOf(change) })
  }

  /** A contact sets the disappearing timer of its chat with the number. */
  contactSetsTimer (phone: string, jid: string, seconds: number): void {
    this.#state(phone, jid).disappearingSeconds = seconds
    this.#tell(phone, { jid, disappearingSeconds: seconds })
  }

  /** A change one of the number's devices made. */
  apply (phone: string, jid: string, change: ChatChange): void {
    if (change.kind === 'delete') {
      this.#chats.get(phone)?.delete(jid)
      return
    }
    Object.assign(this.#state(phone, jid), flagOf(change))
  }

  setTimer (phone: string, jid: string, seconds: number): void {
    // WhatsApp's clients offer only these; the gateway checks its input before it gets here.
    if (!TIMERS.has(seconds)) throw new Error(`no disappearing timer of ${seconds} s`)
    this.#state(phone, jid).disappearingSeconds = seconds
  }

  #tell (phone: string, event: ChatEvent): void {
    for (const listener of this.#reach(phone)) listener.emitLater('chats', [event])
  }

  #state (phone: string, jid: string): TestChatState {
    let chats = this.#chats.get(phone)
    if (!chats) {
      chats = new Map()
      this.#chats.set(phone, chats)
    }
    let state = chats.get(jid)
    if (!state) {
      state = { archived: false, pinned: false, mutedUntil: null, read: true, disappearingSeconds: 0 }
      chats.set(jid, state)
    }
    return state
  }
}

function flagOf (change: Exclude<ChatChange, { kind: 'delete' }>): Partial<TestChatState> {
  switch (change.kind) {
    case 'archive': return { archived: change.archived }
    case 'pin': return { pinned: change.pinned }
    case 'mute': return { mutedUntil: change.until }
    case 'read': return { read: change.read }
  }
}

export function testChatPort (area: TestArea): ChatPort {
  const linked = async (jid: string) => {
    await area.writable(jid)
    const phone = area.phone()
    if (!phone) throw new Error('the device is not linked to a number')
    return phone
  }
  return {
    modify: async (jid, change) => { area.whatsapp.chats.apply(await linked(jid), jid, change) },
    setDisappearing: async (jid, seconds) => { area.whatsapp.chats.setTimer(await linked(jid), jid, seconds) }
  }
}
