import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { chromium, type Browser, type Page, type Route } from 'playwright-core'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { dropNamespaceAfter } from './helpers/namespace-cleanup.ts'
import {
  SANDBOX_ADMIN_HEADERS, SANDBOX_ADMIN_KEY, linkSandboxCompany, startSandboxReplica, stopSandboxReplica
} from './helpers/sandbox-process.ts'
import { publishEvent } from './helpers/publish-event.ts'
import { waitFor } from './helpers/wait.ts'

// The dashboard's Scheduled and Campaigns cards in Debian's Chromium, against a sandbox replica (real
// Baileys on the embedded simulator): messages scheduled through the API are listed, one is cancelled
// with its button and the other is seen sent; a campaign's bar, buttons and report, given and real.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const CONTACT = '79111111111'
const STEP_MS = 20_000
const inMs = (ms: number) => new Date(Date.now() + ms).toISOString()

const namespace = uniqueName('uisched')
dropNamespaceAfter(t, TEST_NATS_URL, namespace)
const replica = await startSandboxReplica({ natsUrl: TEST_NATS_URL, databaseUrl: await createTestDatabase(t), namespace })
t.teardown(() => stopSandboxReplica(replica))
const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
t.teardown(() => browser.close())
const json = { ...SANDBOX_ADMIN_HEADERS, 'content-type': 'application/json' }
const api = (companyId: string, method: string, path: string, body?: unknown) =>
  fetch(`${replica.url}/api/whatsapp/sessions/${companyId}${path}`, {
    method, headers: body === undefined ? SANDBOX_ADMIN_HEADERS : json, ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })

/** A linked company's page, signed in as admin, with its script errors collected. */
async function companyPage (t: Test, companyId: string): Promise<{ page: Page, errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) errors.push(message.text())
  })
  await page.goto(`${replica.url}/ui/`)
  await page.getByLabel('API key').fill(SANDBOX_ADMIN_KEY)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: STEP_MS })
  await page.goto(`${replica.url}/ui/#/company/${encodeURIComponent(companyId)}`)
  await page.locator('.live[data-state=live]').waitFor({ timeout: STEP_MS })
  return { page, errors }
}

t.test('scheduled messages are listed as they are scheduled; Cancel cancels one, the other is seen sent', async (t) => {
  const companyId = uniqueName('salon')
  await linkSandboxCompany(replica, companyId)
  const { page, errors } = await companyPage(t, companyId)
  const card = page.locator('article[aria-labelledby=scheduled-title]')
  await card.getByText('Nothing scheduled.').waitFor({ timeout: STEP_MS })

  const soon = await api(companyId, 'POST', '/send', { phone: CONTACT, message: 'Ждём вас в 15:00', sendAt: inMs(6_000) })
  t.equal(soon.status, 202, 'one due in 6 s')
  const later = await api(companyId, 'POST', '/send', {
    phone: CONTACT, message: '<b>Отменим</b> это', sendAt: inMs(3_600_000), scheduleKey: 'booking-7-reminder'
  })
  t.equal(later.status, 202, 'one due in an hour, with a key and markup in its text')
  const poll = await api(companyId, 'POST', '/polls', {
    phone: CONTACT, question: 'Вам удобно?', options: ['да', 'нет'], sendAt: inMs(7_200_000)
  })
  t.equal(poll.status, 202, 'a poll due in two hours')
  const soonId = (await soon.json() as { id: string }).id
  const laterId = (await later.json() as { id: string }).id

  // The page asks again on message_scheduled: no reload.
  const pending = card.locator('ul.pending li')
  t.ok(await waitFor(async () => await pending.count() === 3, STEP_MS), 'three pending, live')
  t.same(await pending.locator('.preview').allTextContents(), ['Ждём вас в 15:00', '<b>Отменим</b> это', 'Poll: Вам удобно?'],
    'earliest due first, each with its text or question, markup shown as text')
  t.equal(await card.locator('b').count(), 0, 'no markup from a message made it into the page')
  t.match(await pending.first().textContent(), /\+7911\*\*\*1111/, 'the recipient masked')
  t.match(await pending.nth(1).textContent(), /booking-7-reminder/, 'the key shown')
  t.match(await pending.first().locator('.when').textContent(), /in \d+ s/, 'when it is due')

  await card.getByRole('button', { name: /Cancel the message to \+7911\*\*\*1111 due/ }).nth(1).click()
  t.ok(await waitFor(async () => await pending.count() === 2, STEP_MS), 'the cancelled one is no longer pending')
  const listed = await (await api(companyId, 'GET', `/scheduled/${laterId}`)).json() as { scheduled: { status: string } }
  t.equal(listed.scheduled.status, 'cancelled', 'the gateway cancelled it')

  // The first comes due and goes: message_sent moves it to Recent.
  const sent = card.locator(`ul.recent li[data-scheduled="${soonId}"][data-state=sent]`)
  await sent.waitFor({ timeout: 30_000 })
  t.match(await sent.textContent(), /Sent/, 'seen sent, without a reload')
  t.equal(await pending.count(), 1, 'the poll still pending')
  t.equal(await pending.getByRole('button', { name: /Cancel/ }).count(), 1, 'with its Cancel button')
  t.same(errors, [], 'no script errors')
})

/** A campaign as GET …/campaigns answers it. */
function campaignOf (id: string, fields: Record<string, unknown>): Record<string, unknown> & { id: string, name: string } {
  return {
    id,
    name: 'Акция <декабрь>',
    status: 'running',
    pausedReason: null,
    template: { text: 'Скидка 20% для {{name}}', media: null },
    startAt: new Date().toISOString(),
    pacing: { messagesPerMinute: 6, jitter: 0.5, typingMs: 0 },
    quietHours: 'company',
    autoPause: { failureRate: 0.2, notOnWhatsAppRate: 0.5, window: 50 },
    total: 10,
    counts: { queued: 8, sent: 2, delivered: 1, read: 0, failed: 0, skipped: 0 },
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    finishedAt: null,
    ...fields
  }
}

// States a real campaign reaches only by misfortune (paused by itself, for not-on-WhatsApp recipients)
// and a campaign the page has not seen: the card is driven by answers the browser is given (page.route)
// and by campaign_progress events published as a holder publishes them.
t.test('the Campaigns card: a bar moved by campaign_progress, Pause, Resume and Cancel as the state allows, the report', async (t) => {
  const companyId = uniqueName('salon')
  await linkSandboxCompany(replica, companyId)
  const id = '3f1e7b2a-8c4d-4e5f-9a6b-7c8d9e0f1a2b'
  let campaign = campaignOf(id, {})
  const posted: string[] = []
  const base = `/api/whatsapp/sessions/${companyId}/campaigns`
  const answer = async (route: Route) => {
    const url = new URL(route.request().url())
    t.equal(route.request().headers().authorization, `Bearer ${SANDBOX_ADMIN_KEY}`, `${url.pathname} carries the key`)
    const reply = (body: unknown) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) })
    if (url.pathname === base) return reply({ success: true, companyId, campaigns: [campaign] })
    const action = url.pathname.slice(base.length + 1).split('/')[1]
    if (action === 'report') {
      const csv = 'phone,status,message_id,error,sent_at,delivered_at,read_at\n79111111111,sent,ABC,,,,\n'
      return route.fulfill({ status: 200, contentType: 'text/csv', body: csv })
    }
    posted.push(`${route.request().method()} ${action}`)
    const status = ({ pause: 'paused', resume: 'running', cancel: 'cancelled' } as Record<string, string>)[action!]
    campaign = { ...campaign, status, pausedReason: action === 'pause' ? 'manual' : null }
    return reply({ success: true, companyId, campaign })
  }
  const { page, errors } = await companyPage(t, companyId)
  await page.route(`**${base}**`, answer)
  await page.reload()
  await page.locator('.live[data-state=live]').waitFor({ timeout: STEP_MS })
  const card = page.locator('article[aria-labelledby=campaigns-title]')
  const row = card.locator(`section[data-campaign="${id}"]`)
  await row.waitFor({ timeout: STEP_MS })
  t.equal(await row.locator('h3').evaluate((node) => node.firstChild?.textContent), 'Акция <декабрь>', 'its name, as text')
  t.equal(await row.locator('progress').getAttribute('value'), '2', 'the bar: 2 done')
  t.equal(await row.locator('progress').getAttribute('max'), '10', 'of 10')
  t.match(await row.locator('.counts').textContent(), /2 of 10 done \(20%\).*2 sent.*1 delivered.*0 read/s, 'the counts')

  const progress = async (data: Record<string, unknown>) => publishEvent(TEST_NATS_URL, namespace, {
    id: uniqueName('progress'), type: 'campaign_progress', companyId, epoch: 1, data: { campaignId: id, name: campaign.name, ...data }
  })
  const counts = (queued: number, sent: number, delivered: number, read: number, failed: number, skipped: number) =>
    ({ queued, sent, delivered, read, failed, skipped })
  await progress({ status: 'running', pausedReason: null, total: 10, counts: counts(5, 4, 3, 1, 1, 0) })
  t.ok(await waitFor(async () => await row.locator('progress').getAttribute('value') === '5', STEP_MS), 'the event moves the bar: 5 done')
  t.match(await row.locator('.counts').textContent(), /5 of 10 done \(50%\).*4 sent.*3 delivered.*1 read.*1 failed/s)
  t.same(await row.getByRole('button').allTextContents(), ['Pause', 'Cancel', 'Prepare report (CSV)'], 'a running campaign: Pause, Cancel')

  await row.getByRole('button', { name: `Pause ${campaign.name}` }).click()
  await card.locator(`section[data-campaign="${id}"][data-state=paused]`).waitFor({ timeout: STEP_MS })
  t.match(await row.locator('.state').textContent(), /Paused by hand/, 'paused, by hand')
  t.same(await row.getByRole('button').allTextContents(), ['Resume', 'Cancel', 'Prepare report (CSV)'], 'a paused one: Resume, Cancel')
  await row.getByRole('button', { name: `Resume ${campaign.name}` }).click()
  await card.locator(`section[data-campaign="${id}"][data-state=running]`).waitFor({ timeout: STEP_MS })

  // It pauses itself: the event says why.
  await progress({ status: 'paused', pausedReason: 'not_on_whatsapp', total: 10, counts: counts(3, 4, 4, 2, 1, 2) })
  await card.locator(`section[data-campaign="${id}"][data-state=paused]`).waitFor({ timeout: STEP_MS })
  t.match(await row.locator('.state').textContent(), /Paused by itself: too many recipients are not on WhatsApp/, 'why it paused itself')
  t.equal(await row.locator('progress').getAttribute('value'), '7')
  await row.getByRole('button', { name: `Cancel ${campaign.name}` }).click()
  await card.locator(`section[data-campaign="${id}"][data-state=cancelled]`).waitFor({ timeout: STEP_MS })
  t.same(await row.getByRole('button').allTextContents(), ['Prepare report (CSV)'], 'a cancelled one: no Pause, Resume or Cancel')
  t.same(posted, ['POST pause', 'POST resume', 'POST cancel'], 'each button posted its action')

  await row.getByRole('button', { name: `Prepare the report of ${campaign.name}` }).click()
  const link = row.locator(`a[data-report="${id}"]`)
  await link.waitFor({ timeout: STEP_MS })
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()])
  t.match(download.suggestedFilename(), /-report\.csv$/, `the report as a CSV file (${download.suggestedFilename()})`)
  t.match(await readFile((await download.path())!, 'utf8'), /^phone,status,message_id/, 'with the report in it')

  // A campaign the page has not seen asks the list again.
  const other = campaignOf('8a8b8c8d-0000-4000-8000-000000000001', { name: 'Вторая', total: 3, counts: counts(3, 0, 0, 0, 0, 0) })
  await page.route(`**${base}`, (route) => route.fulfill({
    status: 200, contentType: 'application/json', body: JSON.stringify({ success: true, companyId, campaigns: [other, campaign] })
  }))
  await publishEvent(TEST_NATS_URL, namespace, {
    id: uniqueName('progress'),
    type: 'campaign_progress',
    companyId,
    epoch: 1,
    data: { campaignId: other.id, name: other.name, status: 'running', pausedReason: null, total: 3, counts: other.counts }
  })
  await card.locator(`section[data-campaign="${other.id}"]`).waitFor({ timeout: STEP_MS })
  t.equal(await card.locator('section.campaign').count(), 2, 'the new campaign is listed')
  t.same(errors, [], 'no script errors')
})

t.test('a real campaign at a slow pace: its bar moves, Pause holds it, Resume finishes it, the report downloads', async (t) => {
  const companyId = uniqueName('salon')
  await linkSandboxCompany(replica, companyId)
  const { page, errors } = await companyPage(t, companyId)
  const card = page.locator('article[aria-labelledby=campaigns-title]')
  await card.getByText('No campaigns yet.').waitFor({ timeout: STEP_MS })
  const recipients = Array.from({ length: 6 }, (_, index) => ({ phone: `+7916555000${index}`, variables: { name: `Клиент ${index}` } }))
  const created = await api(companyId, 'POST', '/campaigns', {
    name: 'Зимняя <акция>',
    template: { text: 'Привет, {{name}}!' },
    recipients,
    pacing: { messagesPerMinute: 30, jitter: 0 },
    quietHours: 'ignore'
  })
  t.equal(created.status, 201, 'a campaign of 6, a message every 2 s')
  const { id } = (await created.json() as { campaign: { id: string } }).campaign
  const row = card.locator(`section[data-campaign="${id}"]`)
  await row.waitFor({ timeout: STEP_MS })
  t.equal(await row.locator('h3').evaluate((node) => node.firstChild?.textContent), 'Зимняя <акция>', 'listed live, its name as text')
  t.equal(await row.locator('progress').getAttribute('max'), '6')
  const done = async () => Number(await row.locator('progress').getAttribute('value'))
  t.ok(await waitFor(async () => await done() >= 1, STEP_MS, 100), 'the bar moves as it sends')

  await row.getByRole('button', { name: 'Pause Зимняя <акция>' }).click()
  await card.locator(`section[data-campaign="${id}"][data-state=paused]`).waitFor({ timeout: STEP_MS })
  t.match(await row.locator('.state').textContent(), /Paused by hand/)
  // The recipient being sent when it paused may still finish; after that, nothing moves.
  await new Promise((resolve) => setTimeout(resolve, 2_500))
  const held = await done()
  await new Promise((resolve) => setTimeout(resolve, 4_500))
  t.equal(await done(), held, `paused: the bar stays at ${held}`)
  t.ok(held < 6, 'before the end')
  const server = await (await api(companyId, 'GET', `/campaigns/${id}`)).json() as { campaign: { status: string } }
  t.equal(server.campaign.status, 'paused', 'the gateway has it paused')

  await row.getByRole('button', { name: 'Resume Зимняя <акция>' }).click()
  await card.locator(`section[data-campaign="${id}"][data-state=finished]`).waitFor({ timeout: 30_000 })
  t.equal(await done(), 6, 'finished: the bar is full')
  t.match(await row.locator('.counts').textContent(), /6 of 6 done \(100%\).*6 sent/s, 'all six sent')
  t.same(await row.getByRole('button').allTextContents(), ['Prepare report (CSV)'], 'a finished one has no Pause, Resume or Cancel')
  t.ok(await waitFor(async () => /6 delivered/.test((await row.locator('.counts').textContent()) ?? ''), STEP_MS),
    'the receipts show as delivered')

  await row.getByRole('button', { name: 'Prepare the report of Зимняя <акция>' }).click()
  const link = row.locator(`a[data-report="${id}"]`)
  await link.waitFor({ timeout: STEP_MS })
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()])
  const lines = (await readFile((await download.path())!, 'utf8')).trim().split('\n')
  t.equal(lines[0], 'seq,phone,status,message_id,error,sent_at,delivered_at,read_at', 'the report\'s header')
  t.equal(lines.length, 7, 'a line per recipient')
  t.same(errors, [], 'no script errors')
})
