import t from 'tap'
import WebSocket from 'ws'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient } from '../contracts/client.ts'
import { clusterEnv, TEST_LEASE_TTL_MS } from './helpers/cluster.ts'
import { exitOf, startReplicaProcess, type ReplicaProcess } from './helpers/replica-process.ts'
import { uniqueName } from './helpers/services.ts'
import { recordEvents, sessionCluster } from './helpers/sessions.ts'
import { startSimulator, TEST_WA_VERSION } from './helpers/simulator.ts'
import { waitFor } from './helpers/wait.ts'

const SALON = '79001234567'
const CLIENT = '79111111111'
const STEP_MS = 15_000

/**
 * The contract suite, steps 4 to 7: two gateway processes with real Baileys and the auth state
 * in PostgreSQL, used over NATS (the typed client) and WebSocket, against the simulator.
 */
t.test('send a text and a reaction, receive on NATS and WebSocket, and survive SIGKILL of the holder with no 440', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const settings = await sessionCluster(t)
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  // The second replica may take the company over (balancing) at any point: commands wait through a handoff.
  const client = createGatewayClient(nc, { timeoutMs: STEP_MS, namespace: settings.natsNamespace, holderWaitMs: STEP_MS })
  const env = {
    ...clusterEnv(settings),
    WA_TRANSPORT: 'baileys',
    WA_WS_URL: url,
    WA_VERSION: TEST_WA_VERSION.join('.'),
    WA_CERT_PUBLIC_KEY: simulator.identity.publicKeyHex,
    RECONNECT_BASE_MS: '50'
  }
  const replicas = new Map<string, ReplicaProcess>()
  for (const id of [uniqueName('gw-a'), uniqueName('gw-b')]) {
    const replica = await startReplicaProcess({ ...env, REPLICA_ID: id })
    t.teardown(() => { replica.kill('SIGKILL') })
    replicas.set(id, replica)
  }
  // Both replicas settled as members first, so the company's first holder is its preferred one.
  t.ok(await waitFor(async () => {
    const views = await Promise.all([...replicas.values()].map(async (replica) =>
      (await (await fetch(`${replica.url}/api/whatsapp/cluster`)).json()) as { members: { alive: boolean }[] }))
    return views.every((view) => view.members.filter((member) => member.alive).length === replicas.size)
  }, STEP_MS), 'both replicas see each other')
  await new Promise((resolve) => setTimeout(resolve, TEST_LEASE_TTL_MS))
  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)

  const init = await client.initialize(companyId)
  t.equal(init.status, 'qr', 'initialize over NATS shows a QR')
  t.ok(simulator.scan(String(init.qr), SALON), 'scanned')
  t.ok(await events.waitFor('connected', 1, STEP_MS), 'connected')

  // 4. send a text: the simulated contact receives exactly that text
  const text = 'Ваша запись: пятница, 18:30. Мастер — Ольга 💅'
  const sent = await client.send(companyId, { phone: '+7 (911) 111-11-11', message: text })
  t.match(sent, { success: true, phone: CLIENT, messageId: /^[0-9A-F]{10,}$/ })
  t.ok(await waitFor(() => simulator.received(CLIENT).length === 1, STEP_MS), 'the contact received one message')
  t.match(simulator.received(CLIENT), [{ id: sent.messageId, kind: 'text', text }], 'exactly that text')
  t.ok(await events.waitFor('message_status', 1, STEP_MS), 'delivery reported as an event')
  t.match(events.events.find((event) => event.type === 'message_status')?.data, { messageId: sent.messageId, status: 'delivered' })

  // 6. an inbound message appears on NATS and on the WebSocket (of any replica)
  const anyReplica = [...replicas.values()][0]
  const ws = new WebSocket(`${anyReplica.url.replace('http', 'ws')}/api/whatsapp/events?companyId=${companyId}`)
  t.teardown(() => ws.close())
  const frames: { type: string, data?: Record<string, unknown> }[] = []
  ws.on('message', (data) => frames.push(JSON.parse(String(data))))
  t.ok(await waitFor(() => frames.some((frame) => frame.type === 'subscribed'), STEP_MS), 'WebSocket subscribed')
  const inbound = await simulator.deliver({ from: CLIENT, to: SALON, text: 'Спасибо, буду!', pushName: 'Мария' })
  t.equal(inbound.devices + inbound.queued, 1, 'to the one linked device (or kept for it while a handoff moves it)')
  t.ok(await events.waitFor('message', 1, STEP_MS), 'message event on NATS')
  const expected = { messageId: inbound.id, phone: CLIENT, text: 'Спасибо, буду!', pushName: 'Мария' }
  t.match(events.events.find((event) => event.type === 'message')?.data, expected)
  t.ok(await waitFor(() => frames.some((frame) => frame.type === 'message'), STEP_MS), 'and on the WebSocket')
  t.match(frames.find((frame) => frame.type === 'message')?.data, expected)

  // 5. send a reaction (to the contact's message): the contact receives it
  const reaction = await client.react(companyId, { phone: CLIENT, emoji: '❤️', messageId: inbound.id })
  t.ok(
    await waitFor(() => simulator.received(CLIENT).some((message) => message.kind === 'reaction'), STEP_MS),
    'the contact received a reaction'
  )
  t.match(
    simulator.received(CLIENT).find((message) => message.kind === 'reaction'),
    { id: reaction.messageId, reaction: { messageId: inbound.id, emoji: '❤️', fromMe: false } },
    'on its message, with that emoji'
  )

  // The old worker's ❤️ to thanks, now a rule of the company: real Baileys sends it, the contact gets it.
  await client.setAutoReactionRules(companyId, { enabled: true })
  const thanks = await simulator.deliver({ from: CLIENT, to: SALON, text: 'Спасибо большое!' })
  t.ok(
    await waitFor(() => simulator.received(CLIENT).some((message) => message.reaction?.messageId === thanks.id), STEP_MS),
    'an automatic ❤️ on the thanks'
  )
  t.match(
    simulator.received(CLIENT).find((message) => message.reaction?.messageId === thanks.id),
    { kind: 'reaction', reaction: { emoji: '❤️' } }
  )
  await client.setAutoReactionRules(companyId, { enabled: false })

  // 7. SIGKILL the holder: the session resumes on the other replica, with no 440 in the simulator's log
  const { replica: holder } = await client.owner(companyId)
  const victim = replicas.get(String(holder))!
  t.ok(victim, `the holder is ${holder}`)
  const logins = simulator.log.filter((entry) => entry.kind === 'login').length
  const killedAt = Date.now()
  victim.kill('SIGKILL')
  await exitOf(victim)
  t.ok(await events.waitFor('connected', 2, TEST_LEASE_TTL_MS + STEP_MS), 'connected again')
  const resumedMs = Date.now() - killedAt
  t.ok(resumedMs <= TEST_LEASE_TTL_MS + 5_000, `resumed ${resumedMs} ms after the kill (lease TTL ${TEST_LEASE_TTL_MS} ms)`)
  const survivor = [...replicas.keys()].find((id) => id !== holder)
  t.match(await client.owner(companyId), { replica: survivor }, 'held by the survivor')
  t.ok(simulator.log.filter((entry) => entry.kind === 'login').length >= logins + 1, 'logged in again, from PostgreSQL creds (no QR)')
  t.equal(events.types().filter((type) => type === 'qr').length, 1, 'no second QR')
  t.same(simulator.log.filter((entry) => entry.kind === 'replaced'), [], 'no 440: never two connections of the device at once')

  const after = await client.send(companyId, { phone: CLIENT, message: 'После переезда на другую реплику' })
  // Found by id: a thanks delivered again after a handoff may have earned its own ❤️ in between.
  t.ok(await waitFor(() => simulator.received(CLIENT).some((message) => message.id === after.messageId), STEP_MS))
  t.match(
    simulator.received(CLIENT).find((message) => message.id === after.messageId),
    { kind: 'text', text: 'После переезда на другую реплику' },
    'sends continue from the new holder, and the contact decrypts them'
  )
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error in the simulator')

  const survivorProcess = replicas.get(String(survivor))!
  const exit = exitOf(survivorProcess)
  survivorProcess.kill('SIGTERM')
  t.equal(await exit, 0, 'the survivor stops gracefully')
})
