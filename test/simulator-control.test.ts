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
  const badScan = await control.inject({
    method: 'POST', url: '/scan', payload: { qr: 'https://wa.me/settings/linked_devices#nope,a,b,c', phone: '79001234567' }
  })
  t.equal(badScan.statusCode, 404, 'a QR nobody shows')
  t.equal((await control.inject({ method: 'POST', url: '/scan', payload: { qr: 'x', phone: 'abc' } })).statusCode, 400, 'bad input')
  const scan = await control.inject({
    method: 'POST', url: '/scan', payload: { qr: linking.updates.find((update) => update.qr)!.qr, phone: '79001234567' }
  })
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

t.test('the control API sends as a contact, shows what a contact received and read, and takes pairing codes', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const { socket } = await link('79001234567')
  const inbound: string[] = []
  socket.on('messages', (batch) => inbound.push(...batch.map((message) => message.text ?? '')))

  const write = await control.inject({
    method: 'POST', url: '/contacts/79111111111/messages', payload: { to: '79001234567', text: 'Можно на завтра?', pushName: 'Анна' }
  })
  t.equal(write.statusCode, 200)
  t.match(write.json(), { success: true, id: /^[0-9A-F]{16}$/, devices: 1 })
  t.ok(await waitFor(() => inbound.includes('Можно на завтра?'), 10_000), 'the linked device got it')
  t.equal((await control.inject({
    method: 'POST', url: '/contacts/79111111111/messages', payload: { to: '79005550000', text: 'x' }
  })).statusCode, 404, 'no device linked to that number')
  t.equal((await control.inject({
    method: 'POST', url: '/contacts/79111111111/messages', payload: { to: '79001234567', text: '' }
  })).statusCode, 400, 'empty text refused')
  t.equal((await control.inject({
    method: 'POST', url: '/contacts/+7911/messages', payload: { to: '79001234567', text: 'x' }
  })).statusCode, 400, 'phone validated')

  const sent = await socket.sendText('79111111111@s.whatsapp.net', 'Да, в 12:00')
  t.ok(await waitFor(async () =>
    (await control.inject({ method: 'GET', url: '/contacts/79111111111/messages' })).json().messages.length === 1, 10_000))
  t.match((await control.inject({ method: 'GET', url: '/contacts/79111111111/messages' })).json(), {
    success: true, messages: [{ id: sent.messageId, kind: 'text', text: 'Да, в 12:00' }]
  })
  t.equal((await control.inject({
    method: 'POST', url: '/contacts/79111111111/read', payload: { to: '79001234567', messageIds: [sent.messageId] }
  })).statusCode, 200)
  t.equal((await control.inject({
    method: 'POST', url: '/contacts/79111111111/read', payload: { to: '79001234567', messageIds: [] }
  })).statusCode, 400, 'at least one id')
  t.ok(await waitFor(async () => (await control.inject({ method: 'GET', url: '/contacts/79111111111/receipts' })).json()
    .receipts.some((receipt: { type: string }) => receipt.type === 'delivered'), 10_000), 'the device\'s delivery receipt is listed')

  const code = await control.inject({ method: 'POST', url: '/pairing-code', payload: { phone: '79001234567', code: 'ABCD-1234' } })
  t.equal(code.statusCode, 404, 'no companion asked for a code')
  t.match(code.json(), { success: false, error: { code: 'NO_REQUEST' } })
  t.equal((await control.inject({
    method: 'POST', url: '/pairing-code', payload: { phone: '79001234567', code: 'ABC' }
  })).statusCode, 400, 'code format validated')
  await socket.end()
})
