import t from 'tap'
import { initAuthCreds } from '@whiskeysockets/baileys'
import { startSimulator } from './helpers/simulator.ts'
import { controlApi } from '../simulator/control.ts'
import { waitFor } from './helpers/wait.ts'

t.test('the control API links, lists, drops, replaces and refuses what it cannot do', async (t) => {
  const { simulator, connect: connectWith } = await startSimulator(t)
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const creds = initAuthCreds()
  const connect = () => connectWith(creds)

  const linking = connect()
  t.ok(await waitFor(() => linking.updates.some((update) => update.qr), 10_000))
  t.match((await control.inject({ method: 'GET', url: '/devices' })).json(), { devices: [], waitingForScan: 1 })
  const badScan = await control.inject({ method: 'POST', url: '/scan', payload: { qr: 'https://wa.me/settings/linked_devices#nope,a,b,c', phone: '79001234567' } })
  t.equal(badScan.statusCode, 404, 'a QR nobody shows')
  t.equal((await control.inject({ method: 'POST', url: '/scan', payload: { qr: 'x', phone: 'abc' } })).statusCode, 400, 'bad input')
  const scan = await control.inject({ method: 'POST', url: '/scan', payload: { qr: linking.updates.find((update) => update.qr)!.qr, phone: '79001234567' } })
  t.equal(scan.statusCode, 200)
  t.ok(await waitFor(() => linking.updates.some((update) => update.closeCode === 515), 10_000), 'restart after linking')

  const live = connect()
  t.ok(await waitFor(() => live.updates.some((update) => update.connection === 'open'), 10_000), 'logged in')
  const [device] = (await control.inject({ method: 'GET', url: '/devices' })).json().devices
  t.match(device, /^79001234567:\d+$/)
  t.equal((await control.inject({ method: 'POST', url: `/devices/${device}/drop`, payload: { code: 503 } })).statusCode, 200)
  t.ok(await waitFor(() => live.updates.some((update) => update.connection === 'close'), 10_000))
  t.equal(live.updates.find((update) => update.connection === 'close')!.closeCode, 503, 'the client saw the stream error code')
  t.equal((await control.inject({ method: 'POST', url: `/devices/${device}/replace` })).statusCode, 404, 'no longer connected')
  t.equal((await control.inject({ method: 'POST', url: '/devices/not-a-device/logout' })).statusCode, 400, 'device id validated')

  const again = connect()
  t.ok(await waitFor(() => again.updates.some((update) => update.connection === 'open'), 10_000), 'logs in again')
  t.equal((await control.inject({ method: 'POST', url: `/devices/${device}/replace` })).statusCode, 200)
  t.ok(await waitFor(() => again.updates.some((update) => update.closeCode === 440), 10_000), 'replaced: 440')
})
