import type { Test } from 'tap'
import pino from 'pino'
import { initAuthCreds, WA_CERT_DETAILS, type AuthenticationCreds, type SignalKeyStore } from '@whiskeysockets/baileys'
import { baileysFactory } from '../../plugins/session-pool/baileys-adapter.ts'
import type { ConnectionUpdate, WaSocket } from '../../plugins/session-pool/socket-port.ts'
import { WhatsAppSimulator, type SimulatorOptions } from '../../simulator/server.ts'
import { trustSimulatorCa } from '../../simulator/media.ts'
import { waitFor } from './wait.ts'

/** The WhatsApp Web version test clients announce (the simulator accepts any). */
export const TEST_WA_VERSION: [number, number, number] = [2, 3000, 1023223821]

const NO_KEYS: SignalKeyStore = { get: async () => ({}), set: async () => {} }
const LINK_TIMEOUT_MS = 10_000

/** Signal keys in memory, with Baileys' store semantics (missing ids left out, null deletes). */
export function memoryKeys (): SignalKeyStore {
  const entries = new Map<string, unknown>()
  return {
    get: async (type, ids) =>
      Object.fromEntries(
        ids.filter((id) => entries.has(`${type}/${id}`)).map((id) => [id, entries.get(`${type}/${id}`)])
      ) as never,
    set: async (changes) => {
      for (const [type, values] of Object.entries(changes)) {
        for (const [id, value] of Object.entries(values ?? {})) {
          if (value === null) entries.delete(`${type}/${id}`)
          else entries.set(`${type}/${id}`, value)
        }
      }
    }
  }
}

/**
 * A simulator of this test's own, and a Baileys factory that trusts it. Baileys' trusted key is a
 * process-wide value; it is put back when the test ends.
 */
export async function startSimulator (t: Test, options: SimulatorOptions & { reuploadTimeoutMs?: number } = {}) {
  // Its media server's certificate comes from the simulator's own CA (simulator/tls).
  trustSimulatorCa()
  const originalKey = WA_CERT_DETAILS.PUBLIC_KEY
  t.teardown(() => { WA_CERT_DETAILS.PUBLIC_KEY = originalKey })
  const simulator = new WhatsAppSimulator(options)
  const { url } = await simulator.start()
  t.teardown(() => simulator.stop())
  const factory = baileysFactory({
    wsUrl: url,
    version: TEST_WA_VERSION,
    certPublicKeyHex: simulator.identity.publicKeyHex,
    reuploadTimeoutMs: options.reuploadTimeoutMs,
    closeTimeoutMs: 2_000
  })
  /** A Baileys socket on the simulator, with every connection update it reports; ended with the test. */
  const connect = (
    creds: AuthenticationCreds, keys: SignalKeyStore = NO_KEYS, writableUntil?: () => number
  ): { socket: WaSocket, updates: ConnectionUpdate[] } => {
    const socket = factory({ companyId: 'acme', auth: { creds, keys }, log: pino({ level: 'silent' }), writableUntil })
    const updates: ConnectionUpdate[] = []
    socket.on('connection', (update) => updates.push(update))
    t.teardown(() => socket.end())
    return { socket, updates }
  }
  /** A device linked to `phone` by QR and logged in again after the restart WhatsApp asks for. */
  const link = async (phone: string, writableUntil?: () => number) => {
    const creds = initAuthCreds()
    const keys = memoryKeys()
    const linking = connect(creds, keys)
    if (!await waitFor(() => linking.updates.some((update) => update.qr), LINK_TIMEOUT_MS)) throw new Error('no QR')
    simulator.scan(linking.updates.find((update) => update.qr)!.qr!, phone)
    if (!await waitFor(() => linking.updates.some((update) => update.closeCode === 515), LINK_TIMEOUT_MS)) {
      throw new Error('no restart after linking')
    }
    const live = connect(creds, keys, writableUntil)
    if (!await waitFor(() => live.updates.some((update) => update.connection === 'open'), LINK_TIMEOUT_MS)) throw new Error('not open')
    return { ...live, creds, keys, device: creds.me!.id.replace(/@.*/, '') }
  }
  return { simulator, url, factory, connect, link }
}

/** A replica's settings for real Baileys on this simulator (its WebSocket at `url`), as the end-to-end tests start one. */
export function baileysOn (simulator: WhatsAppSimulator, url: string) {
  return {
    waTransport: 'baileys' as const,
    waWsUrl: url,
    waVersion: TEST_WA_VERSION,
    waCertPublicKey: simulator.identity.publicKeyHex
  }
}
