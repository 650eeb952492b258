import type { Test } from 'tap'
import pino from 'pino'
import { WA_CERT_DETAILS, type AuthenticationCreds, type SignalKeyStore } from '@whiskeysockets/baileys'
import { baileysFactory } from '../../plugins/session-pool/baileys-adapter.ts'
import type { ConnectionUpdate, WaSocket } from '../../plugins/session-pool/socket-port.ts'
import { WhatsAppSimulator, type SimulatorOptions } from '../../simulator/server.ts'

/** The WhatsApp Web version test clients announce (the simulator accepts any). */
export const TEST_WA_VERSION: [number, number, number] = [2, 3000, 1023223821]

const NO_KEYS: SignalKeyStore = { get: async () => ({}), set: async () => {} }

/**
 * A simulator of this test's own, and a Baileys factory that trusts it. Baileys' trusted key is a
 * process-wide value; it is put back when the test ends.
 */
export async function startSimulator (t: Test, options: SimulatorOptions = {}) {
  const originalKey = WA_CERT_DETAILS.PUBLIC_KEY
  t.teardown(() => { WA_CERT_DETAILS.PUBLIC_KEY = originalKey })
  const simulator = new WhatsAppSimulator(options)
  const { url } = await simulator.start()
  t.teardown(() => simulator.stop())
  const factory = baileysFactory({ wsUrl: url, version: TEST_WA_VERSION, certPublicKeyHex: simulator.identity.publicKeyHex })
  /** A Baileys socket on the simulator, with every connection update it reports; ended with the test. */
  const connect = (creds: AuthenticationCreds, keys: SignalKeyStore = NO_KEYS): { socket: WaSocket, updates: ConnectionUpdate[] } => {
    const socket = factory({ companyId: 'acme', auth: { creds, keys }, log: pino({ level: 'silent' }) })
    const updates: ConnectionUpdate[] = []
    socket.on('connection', (update) => updates.push(update))
    t.teardown(() => socket.end())
    return { socket, updates }
  }
  return { simulator, url, factory, connect }
}
