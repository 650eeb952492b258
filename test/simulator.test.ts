import t from 'tap'
import pino from 'pino'
import { createRequire } from 'node:module'
import { initAuthCreds, proto, WA_CERT_DETAILS } from '@whiskeysockets/baileys'
import { baileysFactory } from '../plugins/session-pool/baileys-adapter.ts'
import type { ConnectionUpdate } from '../plugins/session-pool/socket-port.ts'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { waitFor } from './helpers/wait.ts'

t.test('real Baileys completes the Noise handshake with the simulator and shows its QR', async (t) => {
  const originalKey = WA_CERT_DETAILS.PUBLIC_KEY
  t.teardown(() => { WA_CERT_DETAILS.PUBLIC_KEY = originalKey })
  const simulator = new WhatsAppSimulator()
  const { url } = await simulator.start()
  t.teardown(() => simulator.stop())

  const factory = baileysFactory({ wsUrl: url, version: [2, 3000, 1023223821], certPublicKeyHex: simulator.identity.publicKeyHex })
  const creds = initAuthCreds()
  const socket = factory({ companyId: 'acme', auth: { creds, keys: { get: async () => ({}), set: async () => {} } }, log: pino({ level: 'silent' }) })
  t.teardown(() => socket.end())
  const updates: ConnectionUpdate[] = []
  socket.on('connection', (update) => updates.push(update))

  t.ok(await waitFor(() => updates.some((update) => update.qr), 10_000), 'Baileys emitted a QR')
  const qr = updates.find((update) => update.qr)!.qr!
  const [ref, noiseKey, identityKey, advSecret] = qr.replace('https://wa.me/settings/linked_devices#', '').split(',')
  t.match(qr, /^https:\/\/wa\.me\/settings\/linked_devices#/, 'in the linked-devices form')
  t.equal(ref, simulator.log.find((entry) => entry.kind === 'pair-device')!.detail, 'built from the simulator\'s first reference')
  t.equal(noiseKey, Buffer.from(creds.noiseKey.public).toString('base64'), 'with the client\'s noise key')
  t.equal(identityKey, Buffer.from(creds.signedIdentityKey.public).toString('base64'))
  t.equal(advSecret, creds.advSecretKey)
  t.ok(simulator.log.some((entry) => entry.kind === 'handshake' && entry.detail === 'unlinked device'), 'the simulator saw an unlinked device')
  t.ok(simulator.log.some((entry) => entry.kind === 'recv' && entry.detail.startsWith('iq') && entry.detail.includes('"type":"result"')), 'and its acknowledgement of pair-device, decrypted')
  t.notOk(simulator.log.some((entry) => entry.kind === 'error'), 'no protocol error')
})

t.test('the simulator\'s certificate chain is signed by its root key (checked directly: rc14 does not)', async (t) => {
  // Baileys 7.0.0-rc14's Curve.verify ignores the boolean libsignal returns and only catches throws,
  // so Baileys accepts any well-formed chain. The chain is checked here with libsignal's own answer,
  // so the simulator stays correct for a Baileys that does verify.
  const require = createRequire(import.meta.url)
  const curve = require('libsignal/src/curve.js') as { verifySignature: (key: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean }
  const signalKey = (key: Uint8Array) => Buffer.concat([Buffer.from([5]), key])
  const simulator = new WhatsAppSimulator()
  const chain = proto.CertChain.decode(simulator.identity.certChain)
  const intermediate = proto.CertChain.NoiseCertificate.Details.decode(chain.intermediate!.details!)
  const leaf = proto.CertChain.NoiseCertificate.Details.decode(chain.leaf!.details!)
  t.equal(intermediate.issuerSerial, WA_CERT_DETAILS.SERIAL, 'issuer serial as Baileys requires')
  t.ok(curve.verifySignature(signalKey(simulator.identity.root.public), chain.intermediate!.details!, chain.intermediate!.signature!), 'intermediate signed by the root')
  t.ok(curve.verifySignature(signalKey(intermediate.key!), chain.leaf!.details!, chain.leaf!.signature!), 'leaf signed by the intermediate')
  t.same(Buffer.from(leaf.key!), Buffer.from(simulator.identity.serverStatic.public), 'leaf carries the server\'s static key')
  t.notOk(curve.verifySignature(signalKey(Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY)), chain.intermediate!.details!, chain.intermediate!.signature!), 'and not by WhatsApp\'s key')
  t.match(simulator.identity.publicKeyHex, /^[0-9a-f]{64}$/, 'its root key in the WA_CERT_PUBLIC_KEY form')
})
