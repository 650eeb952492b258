import t from 'tap'
import { maskPhones, scrub } from '../core/log-privacy.ts'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { dropNamespaceAfter } from './helpers/namespace-cleanup.ts'
import {
  SANDBOX_ADMIN_HEADERS as auth, SANDBOX_ADMIN_KEY, SANDBOX_LINKED_PHONE, startSandboxReplica, stopSandboxReplica
} from './helpers/sandbox-process.ts'
import { waitFor } from './helpers/wait.ts'

t.test('masking: phone numbers keep their first and last four digits; secrets are replaced', async (t) => {
  t.equal(maskPhones('to 79001234567@s.whatsapp.net'), 'to 7900***4567@s.whatsapp.net')
  t.same(scrub({ text: 'Спасибо', qr: 'x', code: 'ABCD1234', close: { code: 401 }, nested: [{ phone: '+79111111111' }] }), {
    text: '[redacted]', qr: '[redacted]', code: '[redacted]', close: { code: 401 }, nested: [{ phone: '7911***1111' }]
  })
})

t.test('no message text, QR, pairing code, key or phone number in any log line of a sandbox flow', async (t) => {
  const namespace = uniqueName('logs')
  dropNamespaceAfter(t, TEST_NATS_URL, namespace)
  const replica = await startSandboxReplica({ natsUrl: TEST_NATS_URL, databaseUrl: await createTestDatabase(t), namespace, keepAll: true })
  t.teardown(() => stopSandboxReplica(replica))
  const json = { ...auth, 'content-type': 'application/json' }
  const contact = '79111111111'
  const secrets: string[] = [SANDBOX_LINKED_PHONE, contact, SANDBOX_ADMIN_KEY]

  // Link by QR, and note the QR.
  const companyId = uniqueName('salon')
  const sessionUrl = `${replica.url}/api/whatsapp/sessions/${companyId}`
  const initialized = await (await fetch(`${sessionUrl}/initialize`, { method: 'POST', headers: auth })).json() as { qr: string }
  secrets.push(initialized.qr)
  await fetch(`${replica.controlUrl}/scan`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ qr: initialized.qr, phone: SANDBOX_LINKED_PHONE })
  })
  const status = async () => (await (await fetch(`${sessionUrl}/status`, { headers: auth })).json()) as { connected: boolean }
  t.ok(await waitFor(async () => (await status()).connected, 10_000))

  // A company key, a send, an inbound message, a reaction.
  const keyResponse = await fetch(`${replica.url}/api/admin/keys`, {
    method: 'POST', headers: json, body: JSON.stringify({ companyIds: [companyId], scopes: ['send'], name: 'bot' })
  })
  const { key } = await keyResponse.json() as { key: string }
  secrets.push(key)
  const sent = await fetch(`${sessionUrl}/send`, {
    method: 'POST',
    headers: { 'x-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify({ phone: `+${contact}`, message: 'Ваша запись на 15:00' })
  })
  t.equal(sent.status, 200)
  secrets.push('Ваша запись на 15:00')
  await fetch(`${replica.controlUrl}/contacts/${contact}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to: SANDBOX_LINKED_PHONE, text: 'Спасибо большое!', pushName: 'Анна' })
  })
  secrets.push('Спасибо большое!')
  const { messageId } = await sent.json() as { messageId: string }
  const reacted = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/reaction`, {
    method: 'POST', headers: json, body: JSON.stringify({ phone: contact, emoji: '❤️', messageId })
  })
  t.equal(reacted.status, 200)

  // Link another company by pairing code, and note the code.
  const paired = uniqueName('salon')
  const pairing = await (await fetch(`${replica.url}/api/whatsapp/sessions/${paired}/initialize`, {
    method: 'POST', headers: json, body: JSON.stringify({ phoneNumber: '+7 922 333-44-55' })
  })).json() as { status: string, pairingCode: string }
  t.equal(pairing.status, 'pairing_code')
  secrets.push(pairing.pairingCode, '79223334455')

  // Log out.
  t.equal((await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}`, { method: 'DELETE', headers: auth })).status, 200)
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  await stopSandboxReplica(replica)

  const lines = replica.lines().filter((line) => line.startsWith('{'))
  t.ok(lines.length > 20, `${lines.length} log lines of the flow`)
  t.ok(lines.some((line) => line.includes('7900***4567')), 'phone numbers appear masked')
  for (const secret of secrets) {
    const leaking = lines.filter((line) => line.includes(secret))
    t.same(leaking.map((line) => line.slice(0, 300)), [], `not in any log line: ${secret.slice(0, 24)}…`)
  }
})
