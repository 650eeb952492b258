/**
 * One gateway replica with real Baileys against a simulator of the test's own, and one company
 * linked to COMPANY_PHONE: what the end-to-end tests of sending and receiving start from.
 */
import type { Test } from 'tap'
import { connect } from '@nats-io/transport-node'
import { Objm } from '@nats-io/obj'
import { jetstream } from '@nats-io/jetstream'
import type { GatewayConfig } from '../../plugins/index.ts'
import type { SimulatorOptions } from '../../simulator/server.ts'
import { uniqueName } from './services.ts'
import { recordEvents, sessionCluster, startSessionReplica } from './sessions.ts'
import { startSimulator } from './simulator.ts'

export const COMPANY_PHONE = '79001230101'
export const CONTACT = '79111230102'

/** One gateway replica with real Baileys on the simulator, and one linked company. */
export async function linkedGateway (t: Test, overrides: Partial<GatewayConfig> = {}, simulatorOptions: SimulatorOptions = {}) {
  const { simulator, url } = await startSimulator(t, simulatorOptions)
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, {
    waTransport: 'baileys',
    waWsUrl: url,
    waVersion: [2, 3000, 1023223821],
    waCertPublicKey: simulator.identity.publicKeyHex,
    ...overrides
  })
  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const init = await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  simulator.scan(init.json().qr, COMPANY_PHONE)
  if (!await events.waitFor('connected', 1, 15_000)) throw new Error('not connected')
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const bucket = await new Objm(jetstream(nc)).open(settings.mediaBucket)
  const objects = async () => (await bucket.list()).filter((info) => info.name.startsWith(`${companyId}/`) && !info.deleted).length
  const send = (payload: unknown) => replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: payload as Record<string, unknown>
  })
  const received = () => simulator.received(CONTACT)
  return { simulator, replica, companyId, events, bucket, objects, send, received, settings }
}
