import t from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { dropNamespaceAfter } from './helpers/namespace-cleanup.ts'
import { SANDBOX_ADMIN_KEY, startSandboxReplica, stopSandboxReplica } from './helpers/sandbox-process.ts'
import { waitFor } from './helpers/wait.ts'

// The dashboard's History card in Debian's Chromium, against a sandbox replica (real Baileys on the
// embedded simulator): a phone that has chats is linked from the page, and the card shows the
// import's progress bar while the chunks arrive, then what was imported.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const PHONE = '79005556677'
const STEP_MS = 30_000
const CHATS = 400
const PER_CHAT = 50

t.test('linking a phone with history from the dashboard shows the import\'s progress, then its totals and chats', { timeout: 180_000 },
  async (t) => {
    const namespace = uniqueName('uihist')
    dropNamespaceAfter(t, TEST_NATS_URL, namespace)
    const replica = await startSandboxReplica({ natsUrl: TEST_NATS_URL, databaseUrl: await createTestDatabase(t), namespace })
    t.teardown(() => stopSandboxReplica(replica))
    const control = (path: string, body: unknown) => fetch(`${replica.controlUrl}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body)
    })
    const seeded = await control(`/accounts/${PHONE}/history`, {
      generate: { chats: CHATS, messagesPerChat: PER_CHAT, days: 20 }, messagesPerChunk: 500
    })
    t.equal(seeded.status, 200, 'the phone holds 20,000 messages in 400 chats')

    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    t.teardown(() => browser.close())
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    await page.goto(`${replica.url}/ui/`)
    await page.getByLabel('API key').fill(SANDBOX_ADMIN_KEY)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Companies' }).waitFor({ timeout: STEP_MS })
    const companyId = uniqueName('salon')
    await page.getByLabel('Link a new company').fill(companyId)
    await page.getByRole('button', { name: 'Open' }).click()
    const card = page.locator('article[aria-labelledby=history-title]')
    await card.getByText('Nothing imported yet').waitFor({ timeout: STEP_MS })
    // Every value the bar shows is recorded, however briefly it is there.
    await page.evaluate(`window.progressSeen = []
    new MutationObserver(() => {
      const bar = document.querySelector('progress.history')
      if (bar) window.progressSeen.push(Number(bar.getAttribute('value')))
    }).observe(document.body, { subtree: true, childList: true, attributes: true })`)

    await page.getByRole('button', { name: 'Show QR code' }).click()
    const qrImage = page.getByRole('img', { name: new RegExp(`QR code to link ${companyId}`) })
    const qr = await qrImage.getAttribute('data-qr', { timeout: STEP_MS })
    t.equal((await control('/scan', { qr, phone: PHONE })).status, 200, 'the phone scanned the QR')
    const done = await waitFor(async () => /^History\s*Imported/.test((await card.textContent()) ?? ''), 120_000, 200)
    t.ok(done, 'the card says the import is done')
    const totals = `Imported · ${(CHATS * PER_CHAT).toLocaleString('en-US')} messages in ${CHATS} chats`
    t.match(await card.textContent(), totals, 'with its totals')
    const seen = await page.evaluate('window.progressSeen') as number[]
    t.ok(seen.length > 0, 'the progress bar showed while chunks arrived')
    t.ok(seen.some((value) => value > 0 && value < 100), `it moved on the way (${[...new Set(seen)].join(', ')})`)
    t.equal(await card.locator('progress.history').count(), 0, 'and is gone once the import is done')
    // The imported chats, newest first, by the names the phone saved (the simulator's chat 0 has the newest messages).
    const chats = page.locator('article[aria-labelledby=chats-title]')
    await chats.locator('li[data-chat="79000000000@s.whatsapp.net"]').waitFor({ timeout: STEP_MS })
    const names = await chats.locator('li .name').allTextContents()
    t.equal(names.length, 10, 'the ten latest chats')
    t.same(names.slice(0, 2), ['Contact 0', 'Contact 1'], 'named, newest first')
    t.match(await chats.locator('li .last').first().textContent(), /message \d+ of chat 0/, 'with the last message')
    t.ok(await waitFor(async () => (await page.locator('dl.facts').count()) > 0, STEP_MS), 'the company page is whole')
    t.same(errors, [], 'no script errors')
  })
