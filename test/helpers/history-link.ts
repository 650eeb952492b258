import type { Test } from 'tap'
import pino from 'pino'
import makeWASocket, { Browsers, initAuthCreds, type BaileysEventMap, type WASocket } from '@whiskeysockets/baileys'
import type { WhatsAppSimulator } from '../../simulator/server.ts'
import { mediaHostDispatcher } from '../../plugins/session-pool/media-host.ts'
import { memoryKeys, TEST_WA_VERSION } from './simulator.ts'
import { waitFor } from './wait.ts'

const LINK_TIMEOUT_MS = 10_000

type HistorySet = BaileysEventMap['messaging-history.set']

/** A connection of a device linked for history: its socket and every history set it emitted, in order. */
export interface HistoryConnection {
  socket: WASocket
  histories: HistorySet[]
}

/**
 * Real Baileys linked to `phone` on the simulator, as a gateway links for history: it processes every
 * history notification (FULL included), fetches blobs from the simulator's media server (WhatsApp's
 * fixed media host redirected), and asks for the full history when `syncFullHistory`. With `mayClose`, the
 * first connection after linking may end before it opened (a test breaks it mid-sync).
 */
export async function linkForHistory (
  t: Test, simulator: WhatsAppSimulator, url: string, phone: string, syncFullHistory: boolean, mayClose = false
) {
  const creds = initAuthCreds()
  const keys = memoryKeys()
  const dispatcher = mediaHostDispatcher(simulator.media.hostname)
  const open = () => {
    const socket = makeWASocket({
      auth: { creds, keys },
      logger: pino({ level: process.env.BAILEYS_LOG ?? 'silent' }) as never,
      waWebSocketUrl: url,
      version: TEST_WA_VERSION,
      browser: Browsers.macOS('Desktop'),
      markOnlineOnConnect: false,
      fireInitQueries: false,
      syncFullHistory,
      shouldSyncHistoryMessage: () => true,
      options: { dispatcher } as RequestInit
    })
    const updates: Partial<BaileysEventMap['connection.update']>[] = []
    const histories: HistorySet[] = []
    socket.ev.on('connection.update', (update) => updates.push(update))
    socket.ev.on('messaging-history.set', (set) => histories.push(set))
    t.teardown(() => socket.end(undefined))
    return { socket, updates, histories }
  }
  const linking = open()
  if (!await waitFor(() => linking.updates.some((update) => update.qr), LINK_TIMEOUT_MS)) throw new Error('no QR')
  simulator.scan(linking.updates.find((update) => update.qr)!.qr!, phone)
  const closeCode = (update: Partial<BaileysEventMap['connection.update']>) =>
    (update.lastDisconnect?.error as { output?: { statusCode?: number } } | undefined)?.output?.statusCode
  if (!await waitFor(() => linking.updates.some((update) => closeCode(update) === 515), LINK_TIMEOUT_MS)) throw new Error('no restart')
  /** A new connection of the linked device (after the previous one ended). */
  const connect = async (closing = false): Promise<HistoryConnection> => {
    const live = open()
    const settled = () => live.updates.some((update) => update.connection === 'open' || (closing && update.connection === 'close'))
    if (!await waitFor(settled, LINK_TIMEOUT_MS)) throw new Error('not open')
    return { socket: live.socket, histories: live.histories }
  }
  return { ...await connect(mayClose), connect: () => connect(), creds, device: creds.me!.id.replace(/@.*/, '') }
}
