import t from 'tap'
import { spawnSync } from 'node:child_process'
import { build } from './helpers/build.ts'
import { uniqueName } from './helpers/services.ts'
import { companyPreferring, linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

/** The value of one sample line (`name{labels} value`) of a Prometheus exposition. */
function sample (text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(labels ? `${name}{${labels}}` : `${name} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

/** promtool's verdict on an exposition (Debian's prometheus package; .ci/run installs it). */
function promtool (text: string): { status: number | null, output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (run.error) throw new Error(`promtool is not installed (apt-get install prometheus): ${run.error.message}`)
  return { status: run.status, output: `${run.stdout}${run.stderr}` }
}

t.test('/metrics passes promtool and counts sessions, sends, reactions, receipts, budgets and leases', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { messagesPerMinute: 3 })
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  const send = (message: string) =>
    replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: { phone: '79001234567', message } })
  t.equal((await send('раз')).statusCode, 200)
  t.equal((await send('два')).statusCode, 200)
  t.equal((await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/reaction`, payload: { phone: '79001234567', emoji: '❤️', messageId: 'IN-1' }
  })).statusCode, 200)
  t.equal((await send('три')).statusCode, 429, 'over the budget')
  replica.app.testWhatsApp!.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'Добрый день' })

  let text = ''
  t.ok(await waitFor(async () => {
    text = (await replica.app.inject({ method: 'GET', url: '/metrics' })).body
    return sample(text, 'whatsapp_messages_received_total') === 1
  }, 5_000), 'the inbound message is counted')
  const response = await replica.app.inject({ method: 'GET', url: '/metrics' })
  t.match(response.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const check = promtool(text)
  t.equal(check.status, 0, `promtool check metrics: ${check.output.trim() || 'clean'}`)
  t.equal(check.output.trim(), '', 'no lint findings')

  t.equal(sample(text, 'whatsapp_messages_sent_total', 'kind="text"'), 2)
  t.equal(sample(text, 'whatsapp_messages_sent_total', 'kind="reaction"'), 1)
  t.equal(sample(text, 'whatsapp_reactions_sent_total'), 1)
  t.equal(sample(text, 'whatsapp_send_duration_seconds_count', 'kind="text"'), 2, 'send latency histogram')
  t.equal(sample(text, 'whatsapp_rate_limited_total', 'limit="messages"'), 1)
  t.equal(sample(text, 'whatsapp_active_connections'), 1)
  t.equal(sample(text, 'whatsapp_sessions', 'state="open"'), 1)
  t.equal(sample(text, 'whatsapp_sessions_total'), 1)
  t.equal(sample(text, 'whatsapp_qr_codes_generated_total'), 1)
  t.equal(sample(text, 'whatsapp_lease_acquisitions_total'), 1)
  t.equal(sample(text, 'whatsapp_lease_losses_total'), 0, 'no lease lost')
  t.equal(sample(text, 'whatsapp_reconnect_attempts'), 0)
  t.equal(sample(text, 'whatsapp_pacing_queue_depth'), 0)
  t.ok((sample(text, 'process_cpu_seconds_total') ?? 0) > 0, 'process metrics')
  t.ok(text.includes('# TYPE whatsapp_takeover_duration_seconds histogram'), 'takeover histogram')
  t.equal((await replica.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200, 'scraping again is fine')
})

t.test('the old JSON metrics are summed over every replica; one that does not answer is named, not waited for', async (t) => {
  const settings = await sessionCluster(t)
  const a = await startSessionReplica(t, settings)
  const b = await startSessionReplica(t, settings)
  // Each company prefers the replica it is linked through, so the QR is where the scan is.
  const first = companyPreferring(a, [a, b])
  await linkCompany(a, first, settings, t)
  const second = companyPreferring(b, [a, b])
  await linkCompany(b, second, settings, t)
  for (const [replica, companyId] of [[a, first], [b, second]] as const) {
    const holder = replica.app.ownership.holds(companyId) ? replica : replica === a ? b : a
    t.equal((await holder.app.inject({
      method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: { phone: '79001234567', message: 'привет' }
    })).statusCode, 200)
  }
  const json = (await a.app.inject({ method: 'GET', url: '/api/whatsapp/metrics' })).json()
  t.match(json, {
    success: true,
    metrics: {
      totalSessions: 2,
      activeConnections: 2,
      messagesSent: 2,
      qrCodesGenerated: 2,
      messagesReceived: 0,
      errors: 0,
      failedReconnects: 0,
      lastError: null
    },
    sessions: { total: 2, connected: 2, disconnected: 0 },
    timestamp: String,
    missing: [],
    complete: true
  }, 'the old shape, over both replicas')
  t.same(json.replicas.map((replica: { replica: string }) => replica.replica).sort(), [a.id, b.id].sort(),
    'with each replica\'s own figures')

  // A member without the metrics plugin never answers: the reply names it within the deadline.
  const silent = await startSessionReplica(t, settings, { disabledPlugins: ['metrics'], metricsGatherTimeoutMs: 300 })
  t.ok(
    await waitFor(
      () => a.app.ownership.members().some((member) => member.replica === silent.id && member.alive),
      5_000
    )
  )
  const started = Date.now()
  const partial = (await a.app.inject({ method: 'GET', url: '/api/whatsapp/metrics' })).json()
  t.ok(Date.now() - started < 2_500, `answered in ${Date.now() - started} ms`)
  t.match(partial, { complete: false, missing: [silent.id] })
})

t.test('a company label only while there are few enough companies (METRICS_COMPANY_LABELS)', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { metricsCompanyLabels: 1 })
  const [one, two] = [uniqueName('salon'), uniqueName('salon')]
  for (const companyId of [one, two]) {
    await linkCompany(replica, companyId, settings, t)
    await replica.app.inject({
      method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: { phone: '79001234567', message: 'x' }
    })
  }
  const text = (await replica.app.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(sample(text, 'whatsapp_messages_sent_total', `kind="text",company="${one}"`), 1, 'the first company has its label')
  t.equal(sample(text, 'whatsapp_messages_sent_total', 'kind="text",company="other"'), 1, 'the rest are "other"')
  t.equal(promtool(text).status, 0)
})

t.test('a held session that stays unhealthy emits health_check_failed once, and nothing reconnects it', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { healthFailedAfterMs: 300 })
  const companyId = uniqueName('salon')
  const events = await (await import('./helpers/sessions.ts')).recordEvents(t, settings, companyId)
  await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  t.ok(await events.waitFor('health_check_failed', 1, 5_000), 'a session waiting for its QR to be scanned is unhealthy')
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal(events.types().filter((type) => type === 'health_check_failed').length, 1, 'reported once for the stretch')
  t.match(events.events.find((event) => event.type === 'health_check_failed')?.data, { state: 'qr', unhealthyForMs: Number })
  const health = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/health` })
  t.equal(health.statusCode, 503)
  t.match(health.json(), {
    healthy: false,
    status: 'qr',
    lease: { holder: replica.id, epoch: Number },
    replica: { id: replica.id, ready: true, checks: { nats: { ok: true }, postgres: { ok: true }, leases: { ok: true } } }
  })
})

t.test('the Grafana dashboard queries only metrics the gateway exports, in valid PromQL', async (t) => {
  const { readFile, writeFile, mkdtemp } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dashboard = JSON.parse(await readFile(new URL('../deploy/grafana/wa-gateway.json', import.meta.url), 'utf8')) as {
    panels: { title: string, targets: { expr: string }[] }[]
  }
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  await linkCompany(replica, uniqueName('salon'), settings, t)
  const text = (await replica.app.inject({ method: 'GET', url: '/metrics' })).body
  const exported = new Set<string>()
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name)
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name + suffix)
  }
  const expressions = dashboard.panels.flatMap((panel) => panel.targets.map((target) => ({ panel: panel.title, expr: target.expr })))
  t.ok(expressions.length >= 12, `${expressions.length} queries`)
  for (const { panel, expr } of expressions) {
    for (const [name] of expr.matchAll(/\b(?:whatsapp|process|nodejs)_[a-z0-9_]+\b/g)) {
      t.ok(exported.has(name), `${panel}: ${name} is exported`)
    }
  }
  // promtool checks PromQL through recording rules; Grafana's variables are given plain values.
  const dir = await mkdtemp(join(tmpdir(), 'wa-dashboard-'))
  const rules = `groups:\n  - name: dashboard\n    rules:\n${expressions.map(({ expr }, index) =>
    `      - record: dashboard:query_${index}\n        expr: '${expr.replaceAll('$job', '.*').replaceAll("'", "''")}'`).join('\n')}\n`
  await writeFile(join(dir, 'rules.yml'), rules)
  const check = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' })
  t.equal(check.status, 0, `promtool check rules: ${(check.stdout + check.stderr).trim().split('\n').at(-1)}`)
})

t.test('a fresh replica exports every documented metric, at 0 for known labels, before any event', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const text = (await replica.app.inject({ method: 'GET', url: '/metrics' })).body
  const { readFile, readdir } = await import('node:fs/promises')
  // docs/observability.md lists the metrics; other pages name those of their area (the webhooks').
  const docs = new URL('../docs/', import.meta.url)
  const pages = (await readdir(docs)).filter((file) => file.endsWith('.md'))
  // The pages name tables too (whatsapp_auth, whatsapp_calls, …): those are not metrics.
  const tables = new Set((await replica.app.orm.em.fork().execute<{ table_name: string }[]>(
    "select table_name from information_schema.tables where table_name like 'whatsapp\\_%'", [], 'all')).map((row) => row.table_name))
  t.ok(tables.has('whatsapp_auth') && tables.has('whatsapp_polls'), 'the tables the pages may name')
  const namesIn = (text: string) => [...text.matchAll(/`(whatsapp_[a-z_]+)/g)].map((match) => match[1]!)
    .filter((name) => !tables.has(name))
  const observability = namesIn(await readFile(new URL('observability.md', docs), 'utf8'))
  t.ok(new Set(observability).size >= 15, `${new Set(observability).size} metric names in docs/observability.md`)
  const documented = [...new Set((await Promise.all(pages.map((file) => readFile(new URL(file, docs), 'utf8')))).flatMap(namesIn))]
  for (const name of documented) t.match(text, new RegExp(`^${name}(_bucket|_count|_sum)?[{ ]`, 'm'), `${name} is exported`)
  t.equal(sample(text, 'whatsapp_messages_sent_total', 'kind="text"'), 0)
  t.equal(sample(text, 'whatsapp_messages_sent_total', 'kind="reaction"'), 0)
  t.equal(sample(text, 'whatsapp_errors_total', 'source="send"'), 0)
  t.equal(sample(text, 'whatsapp_rate_limited_total', 'limit="messages"'), 0)
  t.equal(sample(text, 'whatsapp_sessions', 'state="open"'), 0)
  t.equal(sample(text, 'whatsapp_send_duration_seconds_count', 'kind="text"'), 0)
  t.equal(sample(text, 'whatsapp_lease_acquisitions_total'), 0)
  const check = promtool(text)
  t.equal(check.status, 0, check.output)
})

t.test('/metrics checks credentials, so it is rate limited like any route; only the public probes are exempt', async (t) => {
  const ADMIN = `admin-${'x'.repeat(40)}`
  for (const [mode, config] of [
    ['with METRICS_TOKEN', { metricsToken: 'prometheus-token-123' }],
    ['with the admin key', {}]
  ] as const) {
    const app = await build(t, { config: { authMode: 'keys', adminApiKey: ADMIN, apiRateLimitMax: 3, ...config } })
    const guesses = []
    for (let i = 0; i < 4; i++) {
      guesses.push((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer guess-${i}` } })).statusCode)
    }
    t.same(guesses, [401, 401, 401, 429], `${mode}: guessing the credential of /metrics is limited`)
    const limited = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer guess-5' } })
    t.match(limited.json(), { success: false, error: { code: 'RATE_LIMITED', message: /API limit: 3 requests/ } },
      `${mode}: the one error shape`)
    for (const url of ['/healthz', '/readyz', '/healthz', '/readyz']) {
      t.not((await app.inject({ method: 'GET', url })).statusCode, 429, `${mode}: ${url} is not limited`)
    }
  }
})
