import t from 'tap'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { initAuthCreds, proto, WA_CERT_DETAILS } from '@whiskeysockets/baileys'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { startSimulator } from './helpers/simulator.ts'
import { waitFor } from './helpers/wait.ts'

t.test('real Baileys completes the Noise handshake with the simulator and shows its QR', async (t) => {
  const { simulator, connect } = await startSimulator(t)
  const creds = initAuthCreds()
  const { socket, updates } = connect(creds)

  t.ok(await waitFor(() => updates.some((update) => update.qr), 10_000), 'Baileys emitted a QR')
  const qr = updates.find((update) => update.qr)!.qr!
  const [ref, noiseKey, identityKey, advSecret] = qr.replace('https://wa.me/settings/linked_devices#', '').split(',')
  t.match(qr, /^https:\/\/wa\.me\/settings\/linked_devices#/, 'in the linked-devices form')
  t.equal(ref, simulator.log.find((entry) => entry.kind === 'pair-device')!.detail, 'built from the simulator\'s first reference')
  t.equal(noiseKey, Buffer.from(creds.noiseKey.public).toString('base64'), 'with the client\'s noise key')
  t.equal(identityKey, Buffer.from(creds.signedIdentityKey.public).toString('base64'))
  t.equal(advSecret, creds.advSecretKey)
  t.ok(simulator.log.some((entry) => entry.kind === 'handshake' && entry.detail === 'unlinked device'),
    'the simulator saw an unlinked device')
  // The client acknowledges pair-device and shows the QR at once; the acknowledgement may land just after.
  const acknowledged = () => simulator.log.some((entry) =>
    entry.kind === 'recv' && entry.detail.startsWith('iq') && entry.detail.includes('"type":"result"'))
  t.ok(await waitFor(acknowledged, 2_000), 'and its acknowledgement of pair-device, decrypted')
  t.notOk(simulator.log.some((entry) => entry.kind === 'error'), 'no protocol error')
  await socket.end()
})

t.test('the simulator\'s certificate chain is signed by its root key (checked directly: rc14 does not)', async (t) => {
  // Baileys 7.0.0-rc14's Curve.verify ignores the boolean libsignal returns and only catches throws,
  // so Baileys accepts any well-formed chain. The chain is checked here with libsignal's own answer,
  // so the simulator stays correct for a Baileys that does verify.
  const require = createRequire(import.meta.url)
  const curve = require('libsignal/src/curve.js') as {
    verifySignature: (key: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean
  }
  const signalKey = (key: Uint8Array) => Buffer.concat([Buffer.from([5]), key])
  const simulator = new WhatsAppSimulator()
  const chain = proto.CertChain.decode(simulator.identity.certChain)
  const intermediate = proto.CertChain.NoiseCertificate.Details.decode(chain.intermediate!.details!)
  const leaf = proto.CertChain.NoiseCertificate.Details.decode(chain.leaf!.details!)
  t.equal(intermediate.issuerSerial, WA_CERT_DETAILS.SERIAL, 'issuer serial as Baileys requires')
  t.ok(curve.verifySignature(signalKey(simulator.identity.root.public), chain.intermediate!.details!, chain.intermediate!.signature!),
    'intermediate signed by the root')
  t.ok(curve.verifySignature(signalKey(intermediate.key!), chain.leaf!.details!, chain.leaf!.signature!), 'leaf signed by the intermediate')
  t.same(Buffer.from(leaf.key!), Buffer.from(simulator.identity.serverStatic.public), 'leaf carries the server\'s static key')
  t.notOk(curve.verifySignature(signalKey(Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY)), chain.intermediate!.details!,
    chain.intermediate!.signature!), 'and not by WhatsApp\'s key')
  t.match(simulator.identity.publicKeyHex, /^[0-9a-f]{64}$/, 'its root key in the WA_CERT_PUBLIC_KEY form')
})

function linkedCreds () {
  const creds = initAuthCreds()
  creds.me = { id: '79001234567:3@s.whatsapp.net', name: 'Salon' }
  creds.account = {
    details: randomBytes(32), accountSignatureKey: randomBytes(32), accountSignature: randomBytes(64), deviceSignature: randomBytes(64)
  }
  creds.registered = true
  return creds
}

t.test('a linked device logs in with its stored creds and opens; a second login replaces it (440)', async (t) => {
  const { simulator, connect } = await startSimulator(t)
  const { socket: first, updates: firstUpdates } = connect(linkedCreds())
  const opened = Date.now()
  t.ok(await waitFor(() => firstUpdates.some((update) => update.connection === 'open'), 10_000), 'connection open')
  t.ok(Date.now() - opened < 5_000, `open in ${Date.now() - opened} ms: every query it waits for was answered`)
  t.notOk(firstUpdates.some((update) => update.qr), 'no QR for a linked device')
  t.ok(simulator.log.some((entry) => entry.kind === 'login' && entry.detail === '79001234567:3'))

  const { socket: second, updates: secondUpdates } = connect(linkedCreds())
  t.ok(await waitFor(() => firstUpdates.some((update) => update.connection === 'close'), 10_000), 'the first connection is closed')
  t.equal(firstUpdates.find((update) => update.connection === 'close')!.closeCode, 440, 'with 440, connection replaced')
  t.ok(simulator.log.some((entry) => entry.kind === 'replaced' && entry.detail === '79001234567:3'))
  t.ok(await waitFor(() => secondUpdates.some((update) => update.connection === 'open'), 10_000), 'the new connection is open')
  // End the clients only once their login queries are answered: Baileys' end() leaves the 60 s timer
  // of a query still waiting armed, which would keep this process alive.
  await second.end()
  await first.end()
})

t.test('the phone scans the QR: the device is linked, restarts (515) and logs in with the new creds', async (t) => {
  const { simulator, connect } = await startSimulator(t)
  const creds = initAuthCreds()
  const { socket: linking, updates } = connect(creds)
  let credsUpdates = 0
  linking.on('creds', () => { credsUpdates++ })
  t.ok(await waitFor(() => updates.some((update) => update.qr), 10_000))
  t.ok(simulator.scan(updates.find((update) => update.qr)!.qr!, '79001234567'), 'scanned')
  t.ok(await waitFor(() => updates.some((update) => update.connection === 'close'), 10_000), 'closed for the restart')
  t.equal(updates.find((update) => update.connection === 'close')!.closeCode, 515, 'restart required')
  t.ok(credsUpdates > 0, 'creds were updated')
  t.match(creds.me?.id, /^79001234567:\d+@s\.whatsapp\.net$/, 'the device now belongs to the phone')
  t.ok(creds.account?.accountSignatureKey, 'with the account the phone signed')

  const { socket: loggedIn, updates: after } = connect(creds)
  t.ok(await waitFor(() => after.some((update) => update.connection === 'open'), 10_000), 'the restarted connection logs in and opens')
  t.notOk(after.some((update) => update.qr), 'without a QR')
  t.ok(simulator.log.some((entry) => entry.kind === 'login' && entry.detail.startsWith('79001234567:')))
  await loggedIn.end()
})
