import t from 'tap'
import { parseSealingKeys, Sealer } from '../core/sealing.ts'
import { resealSecrets } from '../plugins/webhooks/index.ts'
import { clusterSettings, startReplica } from './helpers/cluster.ts'
import { TEST_SEALING_KEYS, testSealer } from './helpers/build.ts'
import { publishEvent } from './helpers/publish-event.ts'
import { uniqueName } from './helpers/services.ts'
import { startReceiver } from './helpers/webhook-receiver.ts'
import { waitFor } from './helpers/wait.ts'

const FAST_WEBHOOKS = { webhookAllowPrivate: true, webhookTimeoutMs: 1_000, webhookRetryBaseMs: 100 }
const NEW_KEY = `new:${Buffer.alloc(32, 9).toString('base64')}`

type Stored = { secret: unknown, previous_secret: unknown }

t.test('webhook secrets are sealed at rest, plain ones at start, and resealed by rotate-keys', async (t) => {
  const settings = await clusterSettings(t)
  const replica = await startReplica(t, settings, FAST_WEBHOOKS)
  const companyId = uniqueName('salon')
  const receiver = await startReceiver(t)
  const created = await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/webhooks`, payload: { url: receiver.url }
  })
  const { secret, webhook } = created.json() as { secret: string, webhook: { id: string } }
  receiver.useSecret(secret)
  // Events published before the webhook's consumer exists are never delivered: wait for it, not for time (and before the
  // rows are sealed below under a key this replica does not hold, when it could not read them to start it).
  t.ok(await waitFor(async () => await replica.app.events.backlogOf(webhook.id) !== undefined, 10_000), 'the webhook is consuming')
  const stored = async () => (await replica.app.orm.em.fork().execute<Stored[]>(
    'select secret, previous_secret from webhooks where id = ?', [webhook.id]))[0]
  const sealed = await stored()
  t.match(sealed.secret, { sealed: 1, k: 'test' }, 'stored sealed under the current key')
  t.notOk(JSON.stringify(sealed).includes(secret.slice(6)), 'the secret is nowhere in the row')

  // A row as webhooks_004 leaves one stored before sealing: the secret as a plain JSON string.
  await replica.app.orm.em.fork().execute('update webhooks set secret = to_jsonb(?::text) where id = ?', [secret, webhook.id])
  t.ok(await resealSecrets(() => replica.app.orm.em.fork(), testSealer()) >= 1, 'the start-up reseal seals it')
  t.match((await stored()).secret, { sealed: 1, k: 'test' })

  // rotate-keys with a new first key: sealed under it, and it still opens to the same secret.
  const rotated = new Sealer([...parseSealingKeys(NEW_KEY)!, ...TEST_SEALING_KEYS])
  t.ok(await resealSecrets(() => replica.app.orm.em.fork(), rotated) >= 1)
  const resealed = await stored()
  t.match(resealed.secret, { sealed: 1, k: 'new' }, 'resealed under the new key')
  t.equal(JSON.parse(rotated.open(resealed.secret, `webhook/${webhook.id}`)), secret, 'and opens to the same secret')
  t.throws(() => testSealer().open(resealed.secret, `webhook/${webhook.id}`), /does not hold/, 'which the old key alone cannot open')
  t.throws(() => rotated.open(resealed.secret, 'webhook/wh_other'), 'bound to its webhook: it does not open as another\'s')

  // Sealed under the test key again, deliveries are signed with the secret as before.
  await resealSecrets(() => replica.app.orm.em.fork(), new Sealer([...TEST_SEALING_KEYS, ...parseSealingKeys(NEW_KEY)!]))
  const id = uniqueName('event')
  await publishEvent(settings.natsUrl, settings.natsNamespace, { id, type: 'message_status', companyId, epoch: 1, data: {} })
  t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === id), 10_000), 'delivered and verified with the secret')
})

t.test('rotate-secret: both secrets sign during the overlap, only the new one after it', async (t) => {
  const settings = await clusterSettings(t)
  const replica = await startReplica(t, settings, FAST_WEBHOOKS)
  const companyId = uniqueName('salon')
  const receiver = await startReceiver(t)
  const base = `/api/whatsapp/sessions/${companyId}/webhooks`
  const created = (await replica.app.inject({ method: 'POST', url: base, payload: { url: receiver.url } })).json() as {
    secret: string, webhook: { id: string, previousSecretExpiresAt: string | null }
  }
  t.equal(created.webhook.previousSecretExpiresAt, null, 'one secret to begin with')
  const oldSecret = created.secret
  const url = `${base}/${created.webhook.id}/rotate-secret`
  const deliverOne = async () => {
    const id = uniqueName('event')
    await publishEvent(settings.natsUrl, settings.natsNamespace, { id, type: 'message_status', companyId, epoch: 1, data: {} })
    return id
  }

  // The webhook consumes before the rotation, so the overlap is not spent waiting for it on a loaded machine.
  t.ok(await waitFor(async () => await replica.app.events.backlogOf(created.webhook.id) !== undefined, 10_000), 'the webhook is consuming')
  t.equal((await replica.app.inject({ method: 'POST', url, payload: { overlapSeconds: -1 } })).statusCode, 400, 'a negative overlap is 400')
  t.equal((await replica.app.inject({ method: 'POST', url, payload: { other: 1 } })).statusCode, 400, 'an unknown field is 400')
  const foreign = await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${uniqueName('other')}/webhooks/${created.webhook.id}/rotate-secret`
  })
  t.equal(foreign.statusCode, 404, 'another company\'s webhook is not found')

  const rotation = await replica.app.inject({ method: 'POST', url, payload: { overlapSeconds: 8 } })
  t.equal(rotation.statusCode, 200)
  const { secret: newSecret, webhook } = rotation.json() as { secret: string, webhook: { previousSecretExpiresAt: string } }
  t.match(newSecret, /^whsec_/)
  t.not(newSecret, oldSecret, 'a new secret, shown once')
  t.ok(Date.parse(webhook.previousSecretExpiresAt) > Date.now(), 'the old one signs until the overlap ends')
  const stored = (await replica.app.orm.em.fork().execute<Stored[]>(
    'select secret, previous_secret from webhooks where id = ?', [created.webhook.id]))[0]
  t.match(stored, { secret: { sealed: 1 }, previous_secret: { sealed: 1 } }, 'both sealed')

  // During the overlap a receiver still on the old secret verifies, and one on the new secret too.
  receiver.useSecret(oldSecret)
  const duringOld = await deliverOne()
  t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === duringOld), 5_000), 'the old secret verifies during the overlap')
  receiver.useSecret(newSecret)
  const duringNew = await deliverOne()
  t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === duringNew), 5_000), 'and so does the new one')

  // After it, only the new secret's signature is sent.
  await new Promise((resolve) => setTimeout(resolve, Date.parse(webhook.previousSecretExpiresAt) - Date.now() + 100))
  receiver.useSecret(oldSecret)
  const after = await deliverOne()
  t.ok(await waitFor(() => receiver.attempts.some((attempt) => attempt.id === after), 5_000))
  t.notOk(receiver.attempts.find((attempt) => attempt.id === after)!.verified, 'the old secret no longer verifies')
  receiver.useSecret(newSecret)
  t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === after), 5_000), 'the new one does (the retry is taken)')
  const view = (await replica.app.inject({ method: 'GET', url: `${base}/${created.webhook.id}` })).json() as {
    webhook: { previousSecretExpiresAt: string | null }
  }
  t.equal(view.webhook.previousSecretExpiresAt, null, 'one secret again')

  // overlapSeconds 0 drops the old secret at once; a given secret is used as it is.
  const given = `whsec_${Buffer.alloc(32, 5).toString('base64')}`
  const immediate = (await replica.app.inject({ method: 'POST', url, payload: { secret: given, overlapSeconds: 0 } })).json() as {
    secret: string, webhook: { previousSecretExpiresAt: string | null }
  }
  t.same([immediate.secret, immediate.webhook.previousSecretExpiresAt], [given, null])
})
