import t, { type Test } from 'tap'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { dropNamespaceAfter } from './helpers/namespace-cleanup.ts'
import {
  SANDBOX_ADMIN_HEADERS, SANDBOX_ADMIN_KEY, SANDBOX_LINKED_PHONE, linkSandboxCompany, startSandboxReplica, stopSandboxReplica
} from './helpers/sandbox-process.ts'
import { TcpProxy } from './helpers/tcp-proxy.ts'
import { waitFor } from './helpers/wait.ts'
import { publishEvent } from './helpers/publish-event.ts'

// The dashboard in Debian's Chromium, driven by playwright-core, against a sandbox replica (real
// Baileys on the embedded simulator) as `WA_SANDBOX=1 npm start` runs it. The browser reaches the
// replica through a TCP proxy the test can cut, to drop the page's WebSocket.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
/**
 * docs/dashboard.md shows the screenshots in test/screenshots; UPDATE_SCREENSHOTS=1 writes them there.
 * Otherwise they go to a temporary folder, removed at the end, so a test run changes no tracked file.
 */
const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1'
const SCREENSHOTS = UPDATE_SCREENSHOTS ? 'test/screenshots' : await mkdtemp(join(tmpdir(), 'wa-screenshots-'))
if (!UPDATE_SCREENSHOTS) t.teardown(() => rm(SCREENSHOTS, { recursive: true, force: true }))
const CONTACT = '79111111111'
const OTHER_CONTACT = '79111111112'
const STEP_MS = 20_000
const AXE = fileURLToPath(import.meta.resolve('axe-core/axe.min.js'))

const namespace = uniqueName('ui')
dropNamespaceAfter(t, TEST_NATS_URL, namespace)
const replica = await startSandboxReplica({
  natsUrl: TEST_NATS_URL,
  databaseUrl: await createTestDatabase(t),
  namespace,
  // QR codes rotate every 4 s here (WhatsApp: 60 s, then 20 s), so the test sees the page follow a rotation.
  env: { QR_ROTATE_MS: '4000' }
})
t.teardown(() => stopSandboxReplica(replica))
const proxy = new TcpProxy({ host: '127.0.0.1', port: Number(new URL(replica.url).port) })
await proxy.start()
t.teardown(() => proxy.close())
const base = `http://127.0.0.1:${proxy.port}/ui/`
const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
t.teardown(() => browser.close())
await mkdir(SCREENSHOTS, { recursive: true })

const json = { ...SANDBOX_ADMIN_HEADERS, 'content-type': 'application/json' }
const control = (path: string, body?: unknown) => fetch(`${replica.controlUrl}${path}`, body === undefined
  ? {}
  : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

/** A page in a fresh browser context (its own sessionStorage), with its script errors collected. */
async function newPage (t: Test, viewport = { width: 1280, height: 900 }, bypassCSP = false): Promise<{ page: Page, errors: string[] }> {
  const context = await browser.newContext({ viewport, bypassCSP })
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  // A refused credential is logged by Chromium as a failed resource; only script errors count.
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) errors.push(message.text())
  })
  return { page, errors }
}

/** Signs in with `key`; unless it is expected to be refused, waits until the page is signed in (the key is kept). */
async function signIn (page: Page, key: string, refused = false): Promise<void> {
  await page.goto(base)
  await page.getByLabel('API key').fill(key)
  await page.getByRole('button', { name: 'Sign in' }).click()
  if (!refused) await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: STEP_MS })
}

t.test('a wrong key is refused with a clear message, and nothing is shown', async (t) => {
  const { page, errors } = await newPage(t)
  await signIn(page, 'not-a-key-of-this-gateway', true)
  const alert = page.getByRole('alert')
  await alert.waitFor({ timeout: STEP_MS })
  t.match(await alert.textContent(), /This key was not accepted: the key is unknown or revoked/)
  t.equal(await page.getByRole('heading', { name: 'Companies' }).count(), 0, 'no companies view')
  t.equal(await page.getByLabel('API key').getAttribute('aria-invalid'), 'true', 'the field is marked invalid')
  await page.screenshot({ path: `${SCREENSHOTS}/sign-in-refused.png` })
  t.same(errors, [])
})

t.test('admin: link by QR without reloading, send, see an inbound message live, and the cluster', { timeout: 120_000 }, async (t) => {
  const companyId = uniqueName('salon')
  const { page, errors } = await newPage(t)
  await signIn(page, SANDBOX_ADMIN_KEY)
  await page.getByRole('heading', { name: 'Companies' }).waitFor({ timeout: STEP_MS })
  t.ok(await page.getByRole('link', { name: 'Cluster' }).isVisible(), 'the admin sees the cluster link')

  await page.getByLabel('Link a new company').fill(companyId)
  await page.getByRole('button', { name: 'Open' }).click()
  await page.getByRole('heading', { name: companyId }).waitFor({ timeout: STEP_MS })
  // Whatever happens next must happen on this page, not on a reloaded one.
  await page.evaluate('window.sameDocument = true')
  await page.getByRole('button', { name: 'Show QR code' }).click()
  const qrImage = page.getByRole('img', { name: new RegExp(`QR code to link ${companyId}`) })
  await qrImage.waitFor({ timeout: STEP_MS })
  const firstQr = await qrImage.getAttribute('data-qr')
  t.match(await qrImage.getAttribute('src'), /^data:image\/png;base64,/, 'the QR is an image')
  t.ok(firstQr, 'the QR carries the code it shows')
  // Not connected yet: the groups card says so (the API answers 503 NOT_CONNECTED).
  const groupsCard = page.locator('article[aria-labelledby=groups-title]')
  await groupsCard.locator('[data-state=not-connected]').waitFor({ timeout: STEP_MS })
  t.match(await groupsCard.textContent(), /Not connected: the number's groups are listed once WhatsApp is connected/)
  await page.screenshot({ path: `${SCREENSHOTS}/link-qr.png` })
  // WhatsApp rotates the code: the page shows the new one by itself.
  t.ok(await waitFor(async () => (await qrImage.getAttribute('data-qr')) !== firstQr, STEP_MS, 200), 'the QR was replaced by the next one')

  const scan = await control('/scan', { qr: await qrImage.getAttribute('data-qr'), phone: SANDBOX_LINKED_PHONE })
  t.equal(scan.status, 200, 'the simulated phone scanned it')
  await page.getByText('Connected: WhatsApp is linked.').waitFor({ timeout: STEP_MS })
  t.equal(await page.evaluate('window.sameDocument'), true, 'without reloading')
  t.equal(await qrImage.count(), 0, 'the QR is gone')
  t.match(await page.locator('dl.facts').textContent(), /\+7900\*\*\*4567/, 'the linked phone, masked')

  await page.getByLabel('Phone', { exact: true }).fill(`+${CONTACT}`)
  await page.getByLabel('Message', { exact: true }).fill('Здравствуйте! Ждём вас в 15:00')
  await page.getByRole('button', { name: 'Send' }).click()
  const accepted = page.getByRole('status').filter({ hasText: 'Accepted by WhatsApp' })
  await accepted.waitFor({ timeout: STEP_MS })
  const sentId = (await accepted.locator('.mono').textContent())!
  const arrived = async () => {
    const { messages } = await (await control(`/contacts/${CONTACT}/messages`)).json() as { messages: { id: string, text?: string }[] }
    return messages.some((message) => message.id === sentId && message.text === 'Здравствуйте! Ждём вас в 15:00')
  }
  t.ok(await waitFor(arrived, STEP_MS, 200), 'the contact received it')

  await control(`/contacts/${CONTACT}/messages`, { to: SANDBOX_LINKED_PHONE, text: 'Спасибо, буду!', pushName: 'Анна' })
  const inbound = page.locator('.events li[data-type=message]', { hasText: 'Спасибо, буду!' })
  await inbound.waitFor({ timeout: STEP_MS })
  t.match(await inbound.textContent(), /Анна \(\+7911\*\*\*1111\)/, 'the sender, masked')

  // React to it from the feed: the form takes the message, WhatsApp takes the reaction.
  await inbound.getByRole('button', { name: 'React' }).click()
  await page.locator('form[aria-label="React to a message"] button[type=submit]').click()
  const reacted = async () => {
    const { messages } = await (await control(`/contacts/${CONTACT}/messages`)).json() as { messages: { kind: string, text?: string }[] }
    return messages.some((message) => message.kind === 'reaction')
  }
  t.ok(await waitFor(reacted, STEP_MS, 200), 'the contact got the reaction')

  // Connected, in no group yet: the empty state. A group made through the API is listed by itself.
  await groupsCard.locator('[data-state=empty]').waitFor({ timeout: STEP_MS })
  t.equal(await groupsCard.locator('[data-state=not-connected]').count(), 0, 'no longer "not connected"')
  const created = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/groups`, {
    method: 'POST', headers: json, body: JSON.stringify({ subject: 'Салон: постоянные клиенты', participants: [CONTACT, OTHER_CONTACT] })
  })
  t.equal(created.status, 200, 'a group created through the API')
  const { group } = await created.json() as { group: { id: string } }
  const groupRow = groupsCard.locator(`tr[data-group="${group.id}"]`)
  await groupRow.waitFor({ timeout: STEP_MS })
  t.same(await groupRow.locator('th, td').allTextContents(), ['Салон: постоянные клиенты', '3', 'Yes', group.id],
    'its subject, size, the number an admin, its JID')
  t.equal(await groupsCard.locator('[data-state=empty]').count(), 0, 'the empty state is gone')
  t.match(await groupsCard.getByRole('heading').textContent(), /Groups \(1\)/)
  t.match(await page.locator('.events li[data-type=group_joined]').first().textContent(),
    `joined the group "Салон: постоянные клиенты" (${group.id})`, 'the feed says it too')

  // No poll yet; one sent through the API appears by itself, and the contact's vote moves its tally.
  const pollsCard = page.locator('article[aria-labelledby=polls-title]')
  await pollsCard.locator('[data-state=empty]').waitFor({ timeout: STEP_MS })
  const pollSent = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/polls`, {
    method: 'POST', headers: json, body: JSON.stringify({ phone: CONTACT, question: 'Когда вам удобно?', options: ['10:00', '15:00'] })
  })
  t.equal(pollSent.status, 200, 'a poll sent through the API')
  const { messageId: pollId } = await pollSent.json() as { messageId: string }
  const poll = pollsCard.locator(`section[data-poll="${pollId}"]`)
  await poll.waitFor({ timeout: STEP_MS })
  t.match(await poll.textContent(), /Когда вам удобно\?.*to \+7911\*\*\*1111.*0 people voted/s,
    'its question, the contact masked, no votes')
  const received = async () => {
    const { messages } = await (await control(`/contacts/${CONTACT}/messages`)).json() as { messages: { id: string }[] }
    return messages.some((message) => message.id === pollId)
  }
  t.ok(await waitFor(received, STEP_MS, 200), 'the contact received the poll')
  t.equal((await control(`/contacts/${CONTACT}/polls/${pollId}/votes`, { to: SANDBOX_LINKED_PHONE, options: ['15:00'] })).status, 200)
  await poll.getByText('1 person voted').waitFor({ timeout: STEP_MS })
  t.same(await poll.locator('li .votes').allTextContents(), ['0 votes (0%)', '1 vote (100%)'], 'each option\'s votes and share')
  t.match(await page.locator('.events li[data-type=poll_vote]').first().textContent(), `+7911***1111 voted 15:00 on poll ${pollId}`,
    'the feed words the vote')
  // No call yet; a contact's video call, then its end, listed by itself, and worded in the feed.
  const callsCard = page.locator('article[aria-labelledby=calls-title]')
  await callsCard.locator('[data-state=empty]').waitFor({ timeout: STEP_MS })
  const calling = await control(`/contacts/${OTHER_CONTACT}/calls`, { to: SANDBOX_LINKED_PHONE, video: true })
  const rung = await calling.json() as { callId: string }
  await page.locator('.events li[data-type=call]').first().waitFor({ timeout: STEP_MS })
  t.match(await page.locator('.events li[data-type=call]').first().textContent(), /video call from \+7911\*\*\*1112/)
  await control(`/calls/${rung.callId}/terminate`, {})
  const callRow = callsCard.locator(`tr[data-call="${rung.callId}"]`)
  t.ok(await waitFor(async () => (await callRow.locator('td').nth(2).textContent().catch(() => '')) === 'Ended', STEP_MS, 200),
    'the call is listed, ended')
  t.match(await callRow.locator('th, td').allTextContents(), ['+7911***1112', /s ago$/, 'Video', 'Ended', 'No'],
    'the caller masked, when, video, how it ended, no text')
  t.equal(await callsCard.locator('[data-state=empty]').count(), 0, 'the empty state is gone')
  await page.screenshot({ path: `${SCREENSHOTS}/company.png`, fullPage: true })

  await page.getByRole('link', { name: 'Companies' }).first().click()
  const row = page.locator(`tr[data-company="${companyId}"]`)
  await row.waitFor({ timeout: STEP_MS })
  t.match(await row.textContent(), /Connected/)
  t.match(await row.textContent(), /\+7900\*\*\*4567/)
  t.ok(await waitFor(async () => /per min/.test(await row.textContent() ?? ''), STEP_MS, 200), 'its budget left')
  await page.getByLabel('Search').fill('no-such-company')
  t.equal(await row.count(), 0, 'search filters the list')
  await page.getByLabel('Search').fill(companyId.slice(0, 8))
  await row.waitFor()
  await page.screenshot({ path: `${SCREENSHOTS}/companies.png` })

  await page.getByRole('link', { name: 'Cluster' }).click()
  const member = page.locator('table.replicas tbody tr')
  await member.first().waitFor({ timeout: STEP_MS })
  t.equal(await member.count(), 1, 'one replica')
  t.ok(Number(await member.locator('td.held').textContent()) >= 1, 'holding the companies')
  const change = page.locator('table.changes tr', { hasText: companyId })
  await change.first().waitFor({ timeout: STEP_MS })
  t.match(await change.first().textContent(), /nobody/, 'the company\'s acquisition is a recent ownership change')
  await page.screenshot({ path: `${SCREENSHOTS}/cluster.png`, fullPage: true })
  t.same(errors, [])
})

t.test('live events resume after the connection drops, without a gap and without repeats', { timeout: 90_000 }, async (t) => {
  const companyId = uniqueName('salon')
  await linkSandboxCompany(replica, companyId)
  const { page, errors } = await newPage(t)
  await signIn(page, SANDBOX_ADMIN_KEY)
  await page.goto(`${base}#/company/${companyId}`)
  const state = page.locator('#events-title .live')
  await page.locator('#events-title [data-state=live]').waitFor({ timeout: STEP_MS })

  await proxy.cut()
  await page.locator('#events-title [data-state=reconnecting]').waitFor({ timeout: STEP_MS })
  // Written while the page is cut off: they must appear once it is back.
  for (const text of ['пока вас не было 1', 'пока вас не было 2', 'пока вас не было 3']) {
    await control(`/contacts/${CONTACT}/messages`, { to: SANDBOX_LINKED_PHONE, text })
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  await proxy.restore()
  await page.locator('#events-title [data-state=live]').waitFor({ timeout: STEP_MS })
  await control(`/contacts/${CONTACT}/messages`, { to: SANDBOX_LINKED_PHONE, text: 'снова на связи' })
  const messages = page.locator('.events li[data-type=message]')
  t.ok(await waitFor(async () => await messages.count() === 4, STEP_MS, 200), `four messages shown (${await messages.count()})`)
  const shown = (await messages.allTextContents()).map((text) => /: (.+?)(React)?$/.exec(text)?.[1])
  t.same(shown, ['снова на связи', 'пока вас не было 3', 'пока вас не было 2', 'пока вас не было 1'], 'in order, each once')
  t.match(await state.textContent(), /live/)
  t.same(errors, [])
})

t.test('after a takeover, the old holder\'s late events change nothing the page shows', { timeout: 90_000 }, async (t) => {
  // Another company's lease first, so that this one's epoch is at least 2 and the one before it a real lease (not 0).
  await linkSandboxCompany(replica, uniqueName('earlier'))
  const companyId = uniqueName('salon')
  await linkSandboxCompany(replica, companyId)
  const statusUrl = `${replica.url}/api/whatsapp/sessions/${companyId}/status`
  const { holder, epoch } = await (await fetch(statusUrl, { headers: SANDBOX_ADMIN_HEADERS })).json() as { holder: string, epoch: number }
  t.ok(epoch >= 2, `an older lease can be named (epoch ${epoch})`)
  const { page, errors } = await newPage(t)
  await signIn(page, SANDBOX_ADMIN_KEY)
  await page.goto(`${base}#/company/${companyId}`)
  await page.locator('#events-title [data-state=live]').waitFor({ timeout: STEP_MS })
  const facts = page.locator('dl.facts')
  await facts.getByText(`${holder} · ${epoch}`).waitFor({ timeout: STEP_MS })

  // The holder of the lease before, fenced: its "held by nobody" and its socket's close, retried through a cut, land now.
  const stale = epoch - 1
  await publishEvent(TEST_NATS_URL, namespace, {
    id: uniqueName('fenced'),
    type: 'owner_changed',
    companyId,
    epoch: stale,
    replica: 'replica-old',
    data: { holder: null, epoch: stale, reason: 'fenced' }
  })
  await publishEvent(TEST_NATS_URL, namespace, {
    id: uniqueName('closed'), type: 'disconnected', companyId, epoch: stale, replica: 'replica-old', data: { code: 428 }
  })
  // Then the current holder's message: once the page shows it, it has handled the two before it.
  await control(`/contacts/${CONTACT}/messages`, { to: SANDBOX_LINKED_PHONE, text: 'после захвата' })
  await page.locator('.events li[data-type=message]', { hasText: 'после захвата' }).waitFor({ timeout: STEP_MS })
  t.equal(await page.locator('.events li[data-type=owner_changed]', { hasText: 'nobody' }).count(), 0, 'no "held by nobody"')
  t.equal(await page.locator('.events li[data-type=disconnected]').count(), 0, 'no disconnect of the old socket')
  t.match(await facts.textContent(), `${holder} · ${epoch}`, 'still held by the current holder, at its epoch')

  await page.getByRole('link', { name: 'Companies' }).first().click()
  const row = page.locator(`tr[data-company="${companyId}"]`)
  await row.waitFor({ timeout: STEP_MS })
  t.match(await row.textContent(), `${holder} · ${epoch}`, 'the companies list too')
  t.same(errors, [])
})

t.test('pairing code: the code and its countdown, then connected by itself', { timeout: 90_000 }, async (t) => {
  const companyId = uniqueName('salon')
  const phone = '79005550101'
  const { page, errors } = await newPage(t)
  await signIn(page, SANDBOX_ADMIN_KEY)
  await page.goto(`${base}#/company/${companyId}`)
  await page.getByLabel('Or link with the phone number').fill(`+${phone}`)
  await page.getByRole('button', { name: 'Get code' }).click()
  const code = page.locator('.pairing .code')
  await code.waitFor({ timeout: STEP_MS })
  t.match(await page.locator('.pairing').textContent(), /Valid for \d+ s/, 'with its countdown')
  await page.screenshot({ path: `${SCREENSHOTS}/link-pairing-code.png` })
  const entered = await control('/pairing-code', { phone, code: await code.textContent() })
  t.equal(entered.status, 200, 'the simulated phone took the code')
  await page.getByText('Connected: WhatsApp is linked.').waitFor({ timeout: STEP_MS })
  t.same(errors, [])
})

t.test('a company key sees only its company; another company\'s pages and the cluster stay closed', { timeout: 90_000 }, async (t) => {
  const own = uniqueName('salon')
  const other = uniqueName('salon')
  await linkSandboxCompany(replica, other)
  const created = await fetch(`${replica.url}/api/admin/keys`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ companyIds: [own], scopes: ['read', 'send', 'events', 'link'], name: 'salon-frontdesk' })
  })
  const { key } = await created.json() as { key: string }
  const { page, errors } = await newPage(t, { width: 390, height: 844 })
  await signIn(page, key)
  await page.getByRole('heading', { name: 'Companies' }).waitFor({ timeout: STEP_MS })
  const rows = page.locator('tr[data-company]')
  await rows.first().waitFor({ timeout: STEP_MS })
  t.same(await rows.evaluateAll((found) => found.map((row) => row.getAttribute('data-company'))), [own], 'only its own company')
  t.match(await rows.first().textContent(), /Not linked yet/)
  t.equal(await page.getByRole('link', { name: 'Cluster' }).count(), 0, 'no cluster link')
  await page.screenshot({ path: `${SCREENSHOTS}/company-key-phone.png`, fullPage: true })
  t.ok(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), 'no sideways scrolling on a phone')

  await page.goto(`${base}#/company/${other}`)
  const refused = page.getByRole('alert')
  await refused.waitFor({ timeout: STEP_MS })
  t.match(await refused.textContent(), new RegExp(`No company ${other} here, or this key does not cover it`))
  t.equal(await page.getByText(/\+7900/).count(), 0, 'nothing of the other company is shown')
  await page.goto(`${base}#/cluster`)
  await page.getByRole('heading', { name: 'Companies' }).waitFor({ timeout: STEP_MS })
  t.equal(await page.getByRole('heading', { name: 'Cluster' }).count(), 0, 'the cluster view is not there for it')

  // Its own page works, and linking from it is offered; its groups wait for a connection.
  await page.goto(`${base}#/company/${own}`)
  await page.getByRole('button', { name: 'Show QR code' }).waitFor({ timeout: STEP_MS })
  await page.locator('article[aria-labelledby=groups-title] [data-state=not-connected]').waitFor({ timeout: STEP_MS })
  t.same(errors, [])
})

/** axe-core's findings on the page as it is now, serious and critical only (labels, contrast, roles, names). */
async function axeViolations (page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE })
  const results = await page.evaluate('axe.run(document, { resultTypes: ["violations"] })') as {
    violations: { id: string, impact: string, nodes: { target: string[] }[] }[]
  }
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`)
}

t.test('accessible: signed in by keyboard alone, and no serious axe-core finding on any view', { timeout: 90_000 }, async (t) => {
  const companyId = uniqueName('salon')
  await linkSandboxCompany(replica, companyId)
  // A group, so that the company page's groups table is checked too.
  const created = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/groups`, {
    method: 'POST', headers: json, body: JSON.stringify({ subject: 'Запись на стрижку', participants: [CONTACT] })
  })
  t.equal(created.status, 200, 'a group to list')
  const pollSent = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/polls`, {
    method: 'POST', headers: json, body: JSON.stringify({ phone: CONTACT, question: 'Какая услуга?', options: ['стрижка', 'окрашивание'] })
  })
  t.equal(pollSent.status, 200, 'a poll to show')
  // And a call, so that its calls table is checked too.
  t.equal((await control(`/contacts/${CONTACT}/calls`, { to: SANDBOX_LINKED_PHONE })).status, 200, 'a call to list')
  // axe is injected as a script, which the page's own policy would (rightly) refuse.
  const { page, errors } = await newPage(t, undefined, true)
  await page.goto(base)
  await page.getByLabel('API key').waitFor()
  t.same(await axeViolations(page), [], 'sign-in')
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate('document.activeElement.id'), 'api-key', 'Tab reaches the key field first')
  await page.keyboard.type(SANDBOX_ADMIN_KEY)
  await page.keyboard.press('Enter')
  await page.locator(`tr[data-company="${companyId}"]`).waitFor({ timeout: STEP_MS })
  t.same(await axeViolations(page), [], 'companies')
  // Following the company's link by keyboard: focus it, Enter.
  await page.getByRole('link', { name: companyId }).focus()
  await page.keyboard.press('Enter')
  await page.getByRole('heading', { name: 'Try it' }).waitFor({ timeout: STEP_MS })
  t.equal(await page.evaluate('document.activeElement.tagName'), 'H1', 'focus moves to the new view\'s heading')
  const groupRows = page.locator('table.groups tbody tr')
  await groupRows.first().waitFor({ timeout: STEP_MS })
  await page.locator('section.poll').first().waitFor({ timeout: STEP_MS })
  await page.locator('table.calls tbody tr').first().waitFor({ timeout: STEP_MS })
  t.same(await axeViolations(page), [], 'company, with its groups, polls and calls')
  await page.goto(`${base}#/cluster`)
  await page.locator('table.replicas tbody tr').first().waitFor({ timeout: STEP_MS })
  t.same(await axeViolations(page), [], 'cluster')
  for (const scheme of ['dark', 'light'] as const) {
    // Without motion: Pico's colour transitions would otherwise be measured halfway.
    await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' })
    await page.goto(`${base}#/company/${companyId}`)
    await page.getByRole('heading', { name: 'Try it' }).waitFor({ timeout: STEP_MS })
    await groupRows.first().waitFor({ timeout: STEP_MS })
    t.same(await axeViolations(page), [], `company, ${scheme} colours`)
  }
  t.same(errors, [])
})

t.test('the pages: served offline from the gateway, with a strict content security policy', async (t) => {
  const page = await fetch(base)
  t.equal(page.status, 200)
  const policy = page.headers.get('content-security-policy') ?? ''
  t.match(policy, /default-src 'self'/)
  t.match(policy, /frame-ancestors 'none'/)
  t.notMatch(policy, /unsafe-inline/, 'no inline script or style allowed')
  t.equal(page.headers.get('x-frame-options'), 'DENY')
  const html = await page.text()
  t.notMatch(html, /https?:\/\//, 'nothing loaded from elsewhere')
  for (const file of [
    'vendor/preact.mjs', 'vendor/hooks.mjs', 'vendor/htm.mjs', 'vendor/pico.min.css', 'app/app.js', 'app/asking.js', 'app/groups.js',
    'app/polls.js', 'app/calls.js', 'app/history.js', 'app/chats.js', 'app/style.css'
  ]) {
    t.equal((await fetch(`${base}${file}`)).status, 200, file)
  }
  for (const file of ['vendor/..%2F..%2Fpackage.json', 'app/..%2Findex.ts', 'app/index.html', 'vendor/fastify.js']) {
    const refused = await fetch(`${base}${file}`)
    t.equal(refused.status, 404, `${file} is not served`)
    t.match(await refused.json(), { success: false, error: { code: 'NOT_FOUND' } })
  }
  const redirect = await fetch(base.replace(/\/$/, ''), { redirect: 'manual' })
  t.equal(redirect.status, 302)
})
