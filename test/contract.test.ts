import t from 'tap'
import { WA_CERT_DETAILS } from '@whiskeysockets/baileys'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { uniqueName } from './helpers/services.ts'
import { testSealer } from './helpers/build.ts'
import { waitFor } from './helpers/wait.ts'
import { recordEvents, sessionCluster, startSessionReplica } from './helpers/sessions.ts'

const SETTLE_MS = 15_000

/**
 * The contract suite: the real gateway, with real Baileys (7.0.0-rc14) and the auth state in
 * PostgreSQL, against the simulator. Steps 1-3 and 8 of issue 5; 4-7 need the simulator to handle messages.
 */
t.test('initialize → QR → scan → connected; a restarted replica resumes from PostgreSQL without a QR; ' +
  'logout from the phone wipes it', async (t) => {
  const originalKey = WA_CERT_DETAILS.PUBLIC_KEY
  t.teardown(() => { WA_CERT_DETAILS.PUBLIC_KEY = originalKey })
  const simulator = new WhatsAppSimulator()
  const { url } = await simulator.start()
  t.teardown(() => simulator.stop())
  const settings = await sessionCluster(t)
  const baileys = {
    waTransport: 'baileys' as const,
    waWsUrl: url,
    waVersion: [2, 3000, 1023223821] as [number, number, number],
    waCertPublicKey: simulator.identity.publicKeyHex
  }
  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const first = await startSessionReplica(t, settings, baileys)

  // 1. initialize, and receive the qr event
  const init = await first.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  t.equal(init.statusCode, 200)
  t.match(init.json(), { status: 'qr', qr: /^https:\/\/wa\.me\/settings\/linked_devices#2@/ })
  t.ok(await events.waitFor('qr'), 'qr event on NATS')

  // 2. scan it, and see connected
  t.ok(simulator.scan(init.json().qr, '79001234567'), 'the simulated phone scanned the QR')
  t.ok(await events.waitFor('connected', 1, SETTLE_MS), 'connected')
  const status = (await first.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status` })).json()
  t.match(status, { connected: true, holder: first.id, health: { phoneNumber: '79001234567@s.whatsapp.net' } })
  const stored = await first.app.orm.em.fork().execute<{ creds: unknown }>(
    'select creds from whatsapp_auth where company_id = ?', [companyId], 'get')
  t.match(stored?.creds, { sealed: 1 }, 'creds of the linked device are in PostgreSQL, sealed')
  const opened = JSON.parse(testSealer().open(stored?.creds, `${companyId}/creds`)) as { me?: { id: string } }
  t.match(opened.me?.id, /^79001234567:\d+@s\.whatsapp\.net$/, 'and they are the linked device\'s')

  // 3. restart the replica: it reconnects without a QR, from the creds in PostgreSQL
  const qrs = events.types().filter((type) => type === 'qr').length
  await first.close()
  const second = await startSessionReplica(t, settings, baileys)
  t.ok(await events.waitFor('connected', 2, SETTLE_MS), 'connected again after the restart')
  t.equal(events.types().filter((type) => type === 'qr').length, qrs, 'without a QR')
  t.match((await second.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status` })).json(),
    { connected: true, holder: second.id })
  t.equal(simulator.log.filter((entry) => entry.kind === 'login').length, 2, 'the simulator saw two logins of the linked device')
  t.equal(simulator.log.filter((entry) => entry.kind === 'replaced').length, 0, 'and never two connections at once (no 440)')

  // 8. log out from the phone: the auth state is wiped
  const [device] = simulator.liveDevices()
  t.ok(simulator.logout(device), 'the phone removed the linked device')
  t.ok(await events.waitFor('logout', 1, SETTLE_MS), 'logout event')
  const authRows = async () => (await second.app.orm.em.fork().execute<{ n: number }>(
    'select (select count(*) from whatsapp_auth where company_id = ?) + (select count(*) from whatsapp_keys where company_id = ?) as n',
    [companyId, companyId], 'get')).n
  t.ok(await waitFor(async () => Number(await authRows()) === 0, SETTLE_MS), 'creds and keys wiped')
  t.ok(await waitFor(() => !second.app.ownership.holds(companyId), SETTLE_MS), 'the company is offline until it is initialized again')
  await second.close()
})
