import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SwaggerParser from '@apidevtools/swagger-parser'
import { COMPANY_SCOPES } from '../contracts/index.ts'
import { build } from './helpers/build.ts'
import { openApiJudge, servedDocument, type OpenApiDocument } from './helpers/openapi.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const ADMIN = `admin-${'o'.repeat(40)}`
const PHONE = '79001234567'
/** A 1×1 PNG. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='
const PACKAGE = JSON.parse(await readFile('package.json', 'utf8')) as { version: string, license: string }

async function gateway (t: Parameters<typeof build>[0]) {
  return build(t, { config: { authMode: 'keys', adminApiKey: ADMIN, webhookAllowPrivate: true, apiRateLimitMax: 400 } })
}

t.test('the served document: an operationId, a summary, tags, a 2xx and a 4xx on every operation; servers, license, version', async (t) => {
  const document = await servedDocument(await gateway(t)) as OpenApiDocument & {
    info: { version: string, license: { name: string } }, servers: unknown[]
  }
  t.equal(document.info.version, PACKAGE.version, 'the version is package.json\'s')
  t.equal(document.info.license.name, PACKAGE.license)
  t.ok(document.servers.length > 0, 'servers are set')
  const ids: string[] = []
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations as unknown as Record<string, Record<string, unknown>>)) {
      const name = `${method.toUpperCase()} ${path}`
      const id = operation.operationId as string
      t.match(id, /^[a-z][A-Za-z]+$/, `${name}: a camelCase operationId`)
      ids.push(id)
      t.ok(operation.summary && (operation.tags as string[]).length > 0, `${name}: a summary and tags`)
      const statuses = Object.keys(operation.responses as object)
      t.ok(statuses.some((status) => status.startsWith('2')), `${name}: a 2xx`)
      if (!['/healthz', '/readyz'].includes(path)) t.ok(statuses.some((status) => status.startsWith('4')), `${name}: a 4xx`)
    }
  }
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  // The typed client's methods keep their names in generated clients.
  for (const id of ['send', 'react', 'status', 'logout', 'owner', 'initialize', 'listSessions', 'normalizePhone', 'messages', 'message',
    'checkNumbers', 'deleteMessage', 'autoReactionRules', 'setAutoReactionRules', 'getMedia']) t.ok(ids.includes(id), `operationId ${id}`)
  const initialize = document.paths['/api/whatsapp/sessions/{companyId}/initialize'].post as unknown as {
    requestBody: { required: boolean }
  }
  t.equal(initialize.requestBody.required, false, 'initialize\'s body is optional')
})

t.test('redocly lint (recommended rules) finds nothing, and swagger-parser validates the document', async (t) => {
  const document = await servedDocument(await gateway(t))
  await t.resolves(SwaggerParser.validate(structuredClone(document) as never), 'swagger-parser: valid')
  const dir = await mkdtemp(join(tmpdir(), 'wa-openapi-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'openapi.json'), JSON.stringify(document, null, 2))
  for (const file of ['redocly.yaml', '.redocly.lint-ignore.yaml']) await copyFile(join('test/openapi', file), join(dir, file))
  const lint = spawnSync(process.execPath, [join(process.cwd(), 'node_modules/@redocly/cli/bin/cli.js'), 'lint', 'openapi.json',
    '--config', 'redocly.yaml', '--format', 'json'], { cwd: dir, encoding: 'utf8', env: { ...process.env, REDOCLY_TELEMETRY: 'off' } })
  const report = JSON.parse(lint.stdout) as { totals: { errors: number, warnings: number, ignored: number }, problems: unknown[] }
  t.same(report.totals, { errors: 0, warnings: 0, ignored: 2 }, JSON.stringify(report.problems, null, 1).slice(0, 4000))
})

/** Every answer of a realistic session, successes and each refusal, checked against the document. */
t.test('every operation\'s real answers, refusals included, are what the document says: 0 violations', async (t) => {
  const app = await gateway(t)
  const judge = await openApiJudge(await servedDocument(app))
  const violations: string[] = []
  const exercised = new Set<string>()
  const call = async (method: string, url: string, options: { key?: string, payload?: unknown, ip?: string } = {}) => {
    const response = await app.inject({
      method: method as never,
      url,
      ...(options.key ? { headers: { authorization: `Bearer ${options.key}` } } : {}),
      ...(options.payload !== undefined ? { payload: options.payload as never } : {}),
      ...(options.ip ? { remoteAddress: options.ip } : {})
    })
    const contentType = response.headers['content-type']
    const answer = { method, url, statusCode: response.statusCode, body: response.body }
    violations.push(...judge.violationsOf({ ...answer, contentType: typeof contentType === 'string' ? contentType : undefined }))
    const operation = judge.operationOf(method, url)
    if (operation) exercised.add(operation.operationId)
    return response
  }
  const company = uniqueName('salon')
  const other = uniqueName('other')
  const base = `/api/whatsapp/sessions/${company}`

  // Keys: the admin's, one with every company scope, one with `events` only.
  t.equal((await call('POST', '/api/admin/keys', { key: ADMIN, payload: { companyIds: [company] } })).statusCode, 400)
  const newKey = async (scopes: readonly string[]) =>
    (await call('POST', '/api/admin/keys', { key: ADMIN, payload: { companyIds: [company], scopes, name: 'contract' } })).json()
  const full = await newKey(COMPANY_SCOPES)
  const eventsOnly = await newKey(['events'])
  const key = full.key as string
  t.equal((await call('POST', '/api/admin/keys', { key, payload: { companyIds: [company], scopes: ['send'], name: 'x' } })).statusCode, 403)
  await call('GET', '/api/admin/keys', { key: ADMIN })
  await call('GET', '/api/admin/keys', { key })
  t.equal((await call('DELETE', '/api/admin/keys/no-such-key', { key: ADMIN })).statusCode, 404)
  await call('GET', '/api/whoami', { key })
  t.equal((await call('GET', '/api/whoami')).statusCode, 401, 'no credential')
  await call('GET', '/api/whoami', { key: 'wak_not-a-key' })
  await call('GET', '/healthz')
  await call('GET', '/readyz')

  // Link in the test transport, then every session operation, with and without what it needs.
  const linking = await call('POST', `${base}/initialize`, { key })
  t.equal(linking.statusCode, 200, 'initialize without a body')
  await call('POST', `${base}/initialize`, { key, payload: { phoneNumber: 42 } })
  app.testWhatsApp!.scan(company)
  t.ok(await waitFor(async () => (await app.inject({ method: 'GET', url: `${base}/status`, headers: { authorization: `Bearer ${key}` } }))
    .json().connected === true, 10_000), 'connected')
  for (const url of [`${base}/status`, `${base}/health`, `${base}/owner`, `${base}/budget`, `${base}/auto-reactions`]) {
    await call('GET', url, { key })
    await call('GET', url, { key: eventsOnly.key })
    await call('GET', url.replace(company, other), { key })
  }
  await call('GET', `/api/whatsapp/sessions/${other}/health`, { key: ADMIN })
  await call('GET', `/api/whatsapp/sessions/${other}/owner`, { key: ADMIN })
  const sent = await call('POST', `${base}/send`, { key, payload: { phone: PHONE, message: 'Ваша запись подтверждена' } })
  t.equal(sent.statusCode, 200)
  const messageId = sent.json().messageId as string
  await call('POST', `${base}/send`, { key, payload: { phone: PHONE } })
  await call('POST', `${base}/send`, { key: eventsOnly.key, payload: { phone: PHONE, message: 'x' } })
  await call('POST', `${base}/read`, { key, payload: { phone: PHONE, messageIds: ['IN-1'] } })
  await call('POST', `${base}/presence`, { key, payload: { presence: 'composing', phone: PHONE } })
  await call('POST', `${base}/check-numbers`, { key, payload: { phones: [PHONE] } })
  await call('POST', `${base}/edit`, { key, payload: { phone: PHONE, messageId, text: 'Запись в 15:00' } })
  await call('POST', `${base}/reaction`, { key, payload: { phone: PHONE, emoji: '❤️', messageId, fromMe: true } })
  await call('POST', '/api/whatsapp/reaction', { key, payload: { phone: PHONE, emoji: '👍', messageId, companyId: company } })
  await call('PUT', `${base}/auto-reactions`, { key, payload: { enabled: true } })
  await call('PUT', `${base}/auto-reactions`, { key, payload: { enabled: 'yes' } })
  await call('POST', `${base}/delete`, { key, payload: { phone: PHONE, messageId } })
  await call('GET', `${base}/messages?limit=10`, { key })
  await call('GET', `${base}/messages?limit=0`, { key })
  await call('GET', `${base}/messages/${messageId}`, { key })
  await call('GET', `${base}/messages/NO-SUCH-MESSAGE`, { key })
  await call('GET', `${base}/media/${'a'.repeat(22)}`, { key })
  await call('GET', '/api/phone/normalize?phone=8%20900%20123-45-67', { key })
  await call('GET', '/api/phone/normalize?phone=hello', { key })
  await call('POST', '/api/whatsapp/events/ticket', { key, payload: { companyId: company } })
  await call('POST', '/api/whatsapp/events/ticket', { key, payload: { companyId: other } })
  await call('GET', '/api/whatsapp/sessions?limit=5', { key: ADMIN })
  await call('GET', '/api/whatsapp/cluster', { key: ADMIN })
  await call('GET', '/api/whatsapp/cluster', { key })
  await call('GET', '/api/whatsapp/metrics', { key: ADMIN })

  // Webhooks, a company's and the deployment's.
  for (const [webhooks, credential] of [[`${base}/webhooks`, key], ['/api/admin/webhooks', ADMIN]] as const) {
    await call('POST', webhooks, { key: credential, payload: { url: 'ftp://example.com' } })
    const created = await call('POST', webhooks, { key: credential, payload: { url: 'http://127.0.0.1:9/hook', events: ['message'] } })
    t.equal(created.statusCode, 200, created.body)
    const one = `${webhooks}/${created.json().webhook.id}`
    await call('GET', webhooks, { key: credential })
    await call('GET', one, { key: credential })
    await call('PATCH', one, { key: credential, payload: { paused: true } })
    await call('GET', `${one}/deliveries`, { key: credential })
    await call('POST', `${one}/replay`, { key: credential, payload: { since: 0 } })
    await call('POST', `${one}/rotate-secret`, { key: credential })
    await call('POST', `${one}/rotate-secret`, { key: credential, payload: { overlapSeconds: -1 } })
    await call('DELETE', one, { key: credential })
    t.equal((await call('GET', one, { key: credential })).statusCode, 404)
  }
  await call('GET', '/api/admin/webhooks', { key })

  // Groups, in the test transport's model of WhatsApp's.
  const groups = `${base}/groups`
  await call('POST', groups, { key, payload: { subject: '', participants: [] } })
  const made = await call('POST', groups, { key, payload: { subject: 'Салон: клиенты', participants: [PHONE, '79001234568'] } })
  t.equal(made.statusCode, 200, made.body)
  const group = `${groups}/${made.json().group.id as string}`
  await call('GET', groups, { key })
  await call('GET', group, { key })
  await call('GET', `${groups}/12345678@g.us`, { key })
  await call('POST', `${group}/participants`, { key, payload: { action: 'add', participants: ['79001234569', PHONE] } })
  await call('PATCH', `${group}`, { key, payload: { subject: 'Салон: VIP', settings: { joinApproval: true } } })
  await call('PUT', `${group}/picture`, { key, payload: { data: PNG } })
  await call('PUT', `${group}/picture`, { key, payload: { data: Buffer.from('not a picture').toString('base64') } })
  const code = (await call('GET', `${group}/invite`, { key })).json().code as string
  const fresh = (await call('DELETE', `${group}/invite`, { key })).json().code as string
  await call('GET', `${base}/group-invites/${fresh}`, { key })
  await call('GET', `${base}/group-invites/${code}`, { key })
  await call('POST', `${base}/group-invites/${fresh}`, { key })
  await call('GET', `${group}/join-requests`, { key })
  await call('POST', `${group}/join-requests`, { key, payload: { action: 'approve', participants: ['79001234570'] } })
  const phoneOfCompany = app.testWhatsApp!.phoneOf(company)!
  const theirs = app.testWhatsApp!.groups.create({ creator: '79001234571', subject: 'Чужая', participants: [phoneOfCompany] }).jid
  t.equal((await call('POST', `${groups}/${theirs}/participants`, { key, payload: { action: 'promote', participants: [PHONE] } }))
    .statusCode, 409, 'not an admin')
  await call('DELETE', group, { key })
  // Status posts: a text to a contact, and one refused for naming no one.
  const story = { text: 'Акция', backgroundColor: '#1E8A5C', font: 'fb_script', recipients: [PHONE] }
  await call('POST', `${base}/status`, { key, payload: story })
  await call('POST', `${base}/status`, { key, payload: { text: 'Никому' } })

  // Polls, and a vote from the test transport's contact.
  await call('POST', `${base}/polls`, { key, payload: { phone: PHONE, question: 'Когда?', options: ['10:00'] } })
  const poll = await call('POST', `${base}/polls`, { key, payload: { phone: PHONE, question: 'Когда?', options: ['10:00', '12:00'] } })
  t.equal(poll.statusCode, 200, poll.body)
  app.testWhatsApp!.polls.vote(poll.json().messageId, { phone: PHONE, options: ['12:00'] })
  const tally = `${base}/messages/${poll.json().messageId as string}/poll`
  t.ok(await waitFor(async () => (await call('GET', tally, { key })).json().poll.voters === 1, 5_000), 'the vote is counted')
  await call('GET', `${base}/messages/NO-SUCH-POLL/poll`, { key })
  await call('GET', `${base}/polls?limit=5`, { key })
  await call('GET', `${base}/polls?limit=500`, { key })
  // Profiles and blocking, in the test transport's model of WhatsApp's.
  app.testWhatsApp!.profiles.setPicture('79001234572', Buffer.from('a picture'))
  await call('GET', `${base}/profile`, { key })
  await call('PATCH', `${base}/profile`, { key, payload: { about: 'Салон «Лотос»' } })
  await call('PUT', `${base}/profile/picture`, { key, payload: { data: PNG } })
  await call('PUT', `${base}/profile/picture`, { key, payload: { data: Buffer.from('not a picture').toString('base64') } })
  await call('DELETE', `${base}/profile/picture`, { key })
  await call('GET', `${base}/contacts/79001234572/profile`, { key })
  await call('GET', `${base}/contacts/not-a-phone/profile`, { key })
  await call('GET', `${base}/contacts/79001234572/picture/preview`, { key })
  await call('POST', `${base}/blocklist`, { key, payload: { phone: '79001234572', action: 'block' } })
  await call('POST', `${base}/blocklist`, { key, payload: { phone: 'abc', action: 'block' } })
  await call('GET', `${base}/blocklist`, { key })
  // Calls, rung through the test transport: the record, a rejection by the API, the settings.
  const callId = app.testWhatsApp!.calls.ring(company, { from: PHONE, video: true })!
  t.ok(await waitFor(async () => (await call('GET', `${base}/calls`, { key })).json().calls.length === 1, 5_000), 'the call is recorded')
  await call('POST', `${base}/calls/${callId}/reject`, { key })
  await call('POST', `${base}/calls/0123456789ABCDEF0123456789ABCDEF/reject`, { key })
  await call('GET', `${base}/calls?limit=0`, { key })
  await call('GET', `${base}/call-settings`, { key })
  await call('PUT', `${base}/call-settings`, { key, payload: { rejectCalls: true, replyText: 'Напишите нам в чат' } })
  await call('PUT', `${base}/call-settings`, { key, payload: { rejectCalls: 'yes' } })
  // History: a chunk the phone sends, the import's state, a file fetched when asked for, older messages asked for.
  const history = app.testWhatsApp!.history
  history.file('/test/history/photo', Buffer.from('a photo'))
  history.announce(company, [{
    syncType: 'recent',
    chunkOrder: 0,
    progress: 100,
    chunk: {
      chats: [{ jid: `${PHONE}@s.whatsapp.net`, name: 'Анна' }],
      contacts: [],
      lids: [],
      messages: [{
        id: 'HIST-1',
        from: `${PHONE}@s.whatsapp.net`,
        fromMe: false,
        timestamp: Math.floor(Date.now() / 1000) - 3_600,
        media: { kind: 'image', mimetype: 'image/jpeg' },
        mediaRef: { kind: 'image', directPath: '/test/history/photo', mediaKey: 'AAAA' }
      }]
    }
  }])
  t.ok(await waitFor(async () => (await call('GET', `${base}/history`, { key })).json().sync.chunks === 1, 5_000), 'the chunk is imported')
  await call('POST', `${base}/messages/HIST-1/media`, { key })
  await call('POST', `${base}/messages/NO-SUCH-MESSAGE/media`, { key })
  await call('POST', `${base}/chats/${PHONE}/history`, { key, payload: { count: 10 } })
  await call('POST', `${base}/chats/${PHONE}/history`, { key, payload: { count: 0 } })
  // A proxy for the company: set (a refusal of a URL that is none), read without its password, checked
  // (nothing listens at its port: proxy_unreachable), removed.
  await call('PUT', `${base}/proxy`, { key, payload: { url: 'http://salon:secret@127.0.0.1:9' } })
  await call('PUT', `${base}/proxy`, { key, payload: { url: 'ftp://127.0.0.1:21' } })
  await call('GET', `${base}/proxy`, { key })
  await call('GET', `${base}/proxy/check`, { key })
  await call('DELETE', `${base}/proxy`, { key })
  // Chat state, in the test transport's model of WhatsApp's app state.
  const chat = `${base}/chats/${PHONE}`
  await call('PATCH', chat, { key, payload: { archived: true, mutedUntil: new Date(Date.now() + 3_600_000).toISOString() } })
  await call('PATCH', chat, { key, payload: {} })
  await call('PATCH', chat, { key: eventsOnly.key, payload: { pinned: true } })
  await call('GET', `${base}/chats?limit=5`, { key })
  await call('GET', `${base}/chats?before=yesterday`, { key })
  await call('DELETE', chat, { key })

  // Scheduled messages and quiet hours.
  const inAnHour = new Date(Date.now() + 3_600_000).toISOString()
  await call('POST', `${base}/send`, { key, payload: { phone: PHONE, message: 'Напоминание', sendAt: inAnHour, scheduleKey: 'booking-1' } })
  await call('POST', `${base}/polls`, { key, payload: { phone: PHONE, question: 'Удобно?', options: ['да', 'нет'], sendAt: inAnHour } })
  await call('POST', `${base}/send`, { key, payload: { phone: PHONE, message: 'x', scheduleKey: 'booking-1' } })
  await call('GET', `${base}/scheduled?status=scheduled&limit=10`, { key })
  await call('GET', `${base}/scheduled?cursor=nonsense`, { key })
  await call('GET', `${base}/scheduled/booking-1`, { key })
  await call('GET', `${base}/scheduled/no-such-key`, { key })
  await call('DELETE', `${base}/scheduled/booking-1`, { key })
  await call('DELETE', `${base}/scheduled/booking-1`, { key })
  await call('PUT', `${base}/quiet-hours`, { key, payload: { timezone: 'Europe/Moscow', from: '09:00', to: '21:00' } })
  await call('PUT', `${base}/quiet-hours`, { key, payload: { timezone: 'Nowhere/City', from: '09:00', to: '21:00' } })
  await call('GET', `${base}/quiet-hours`, { key })
  await call('DELETE', `${base}/quiet-hours`, { key })
  // A campaign: created (and a refusal), listed, read, paused, resumed, cancelled, reported.
  const campaign = await call('POST', `${base}/campaigns`, {
    key,
    payload: {
      name: 'Акция', template: { text: 'Привет, {{name}}' }, recipients: [{ phone: PHONE, variables: { name: 'Анна' } }], startAt: inAnHour
    }
  })
  const campaignUrl = `${base}/campaigns/${campaign.json().campaign.id as string}`
  const unnamed = { name: 'Без имени', template: { text: '{{name}}' }, recipients: [{ phone: PHONE }] }
  await call('POST', `${base}/campaigns`, { key, payload: unnamed })
  await call('GET', `${base}/campaigns`, { key })
  await call('GET', campaignUrl, { key })
  await call('GET', `${base}/campaigns/00000000-0000-4000-8000-000000000000`, { key })
  await call('POST', `${campaignUrl}/pause`, { key })
  await call('POST', `${campaignUrl}/pause`, { key })
  await call('POST', `${campaignUrl}/resume`, { key })
  await call('POST', `${campaignUrl}/cancel`, { key })
  await call('GET', `${campaignUrl}/report`, { key })

  await call('DELETE', base, { key })
  await call('DELETE', `/api/admin/keys/${eventsOnly.id as string}`, { key: ADMIN })
  // The API limit, from an IP of its own.
  let limited = false
  for (let i = 0; i < 500 && !limited; i++) limited = (await call('GET', '/api/whoami', { ip: '10.9.9.9' })).statusCode === 429
  t.ok(limited, 'the API limit answered 429')

  t.same(violations, [], 'every answer is documented, with its schema')
  t.same(judge.operationIds().filter((id) => !exercised.has(id)), [], 'every operation was exercised')
})

t.test('the judge itself: an undocumented status, a body off its schema and an unknown route are violations', async (t) => {
  const judge = await openApiJudge(await servedDocument(await gateway(t)))
  const answer = { method: 'GET', url: '/api/whoami', contentType: 'application/json; charset=utf-8' }
  const principal = { id: 'admin', kind: 'admin', companies: '*', scopes: [] }
  t.same(judge.violationsOf({ ...answer, statusCode: 200, body: JSON.stringify({ success: true, principal }) }), [])
  t.match(judge.violationsOf({ ...answer, statusCode: 418, body: '{}' }), [/status not documented for whoAmI/])
  t.match(judge.violationsOf({ ...answer, statusCode: 200, body: JSON.stringify({ success: true }) }), [/does not match whoAmI's schema/])
  t.match(judge.violationsOf({ ...answer, url: '/api/nowhere', statusCode: 404, body: '{}' }), [/no documented operation/])
})
