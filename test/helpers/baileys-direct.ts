import type { Test } from 'tap'
import pino from 'pino'
import makeWASocket, { initAuthCreds, type BaileysEventMap, type WASocket } from '@whiskeysockets/baileys'
import type { WhatsAppSimulator } from '../../simulator/server.ts'
import { memoryKeys, TEST_WA_VERSION } from './simulator.ts'
import { waitFor } from './wait.ts'

const LINK_TIMEOUT_MS = 10_000

/** Every payload Baileys emitted, by event name, in order. */
export class EventLog {
  readonly #seen = new Map<keyof BaileysEventMap, unknown[]>()

  constructor (socket: WASocket) {
    const names: (keyof BaileysEventMap)[] = [
      'messages.upsert', 'messages.update', 'message-receipt.update', 'groups.upsert', 'groups.update',
      'group-participants.update', 'group.join-request', 'contacts.update', 'connection.update',
      'chats.update', 'chats.delete'
    ]
    for (const name of names) socket.ev.on(name, (payload: unknown) => this.#list(name).push(payload))
  }

  of<E extends keyof BaileysEventMap> (name: E): BaileysEventMap[E][] {
    return this.#list(name) as BaileysEventMap[E][]
  }

  #list (name: keyof BaileysEventMap): unknown[] {
    let list = this.#seen.get(name)
    if (!list) {
      list = []
      this.#seen.set(name, list)
    }
    return list
  }
}

/**
 * Real Baileys on the simulator, made with makeWASocket itself (not through the gateway's adapter):
 * linked to `phone` by QR, then logged in again after the restart WhatsApp asks for. The simulator's
 * certificate key must already be trusted (startSimulator does that). Ended with the test.
 */
export async function linkDirectly (t: Test, simulator: WhatsAppSimulator, url: string, phone: string) {
  const creds = initAuthCreds()
  const keys = memoryKeys()
  const open = () => {
    const socket = makeWASocket({
      auth: { creds, keys },
      logger: pino({ level: process.env.BAILEYS_LOG ?? 'silent' }) as never,
      waWebSocketUrl: url,
      version: TEST_WA_VERSION,
      markOnlineOnConnect: false,
      fireInitQueries: false,
      shouldSyncHistoryMessage: () => false
    })
    const updates: Partial<BaileysEventMap['connection.update']>[] = []
    socket.ev.on('connection.update', (update) => updates.push(update))
    t.teardown(() => socket.end(undefined))
    return { socket, updates }
  }
  const linking = open()
  if (!await waitFor(() => linking.updates.some((update) => update.qr), LINK_TIMEOUT_MS)) throw new Error('no QR')
  simulator.scan(linking.updates.find((update) => update.qr)!.qr!, phone)
  const closeCode = (update: Partial<BaileysEventMap['connection.update']>) =>
    (update.lastDisconnect?.error as { output?: { statusCode?: number } } | undefined)?.output?.statusCode
  if (!await waitFor(() => linking.updates.some((update) => closeCode(update) === 515), LINK_TIMEOUT_MS)) throw new Error('no restart')
  /** A new connection of the linked device (after the previous one ended), with its own event log. */
  const connect = async () => {
    const live = open()
    const events = new EventLog(live.socket)
    if (!await waitFor(() => live.updates.some((update) => update.connection === 'open'), LINK_TIMEOUT_MS)) throw new Error('not open')
    return { socket: live.socket, events }
  }
  return { ...await connect(), connect, creds, device: creds.me!.id.replace(/@.*/, '') }
}
