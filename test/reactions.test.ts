import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient } from '../contracts/index.ts'
import { isSingleEmoji } from '../plugins/reactions/emoji.ts'
import { DEFAULT_GRATITUDE, DEFAULT_NOT_GRATITUDE, gratitudeTest, MAX_GRATITUDE_WORDS } from '../plugins/reactions/gratitude.ts'
import { uniqueName } from './helpers/services.ts'
import { companyPreferring, linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

t.test('an emoji is exactly one emoji grapheme (Intl.Segmenter + Unicode emoji properties)', async (t) => {
  for (const emoji of ['❤️', '👍🏽', '👨‍👩‍👧', '🇷🇺', '🙏', '🔥', '1️⃣', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '👩🏾‍💻', '©️']) t.ok(isSingleEmoji(emoji), `accepts ${emoji}`)
  const rejected: [string, string][] = [
    ['abcd', 'letters'], ['❤️❤️', 'two emoji'], ['👍 👍', 'two emoji with a space'], ['спасибо', 'plain text'], ['1', 'a digit'],
    ['', 'empty (only an explicit removal, checked by the caller)'], ['❤', 'a bare text-style heart (no emoji variation selector)'],
    ['©', 'a text-style symbol'], ['🇷', 'half a flag'], ['❤️ ', 'a trailing space'], [':heart:', 'a shortcode']
  ]
  for (const [text, why] of rejected) t.notOk(isSingleEmoji(text), `rejects ${JSON.stringify(text)}: ${why}`)
})

t.test('thanks are recognised in Russian and English; replies to thanks, refusals and "благодаря" are not', async (t) => {
  const thanks = gratitudeTest({ patterns: DEFAULT_GRATITUDE, exclusions: DEFAULT_NOT_GRATITUDE })
  const yes = [
    'Спасибо!', 'спасибо большое 🙏', 'Спасибо, до встречи в пятницу', 'СПАСИБО', 'Спасибочки))', 'спасибки', 'спс', 'Спс!!!',
    'Благодарю за запись', 'Огромное спасибо мастеру Ольге!', 'Пасиб', 'Мерси 😘', 'Спасибо, всё понравилось. А можно на следующей неделе?',
    'Thank you so much!', 'thanks!!', 'Thx', 'ty', 'Thanks a lot, see you', 'much appreciated', 'Cheers!'
  ]
  for (const text of yes) t.ok(thanks(text), `thanks: ${text}`)
  const no = [
    ['Не за что', 'a reply to thanks'], ['Нет, спасибо', 'a refusal'], ['спасибо, не надо', 'a refusal'], ['No thanks', 'a refusal'],
    ['Благодаря пробкам опоздаю на 10 минут', '"due to"'], ['Записаться можно на завтра?', 'a request'],
    ['typing…', '"ty" only as a whole word'],
    ['спасательный круг', 'a word that starts like спасибо but is not it'], ['', 'empty'], ['👍', 'an emoji alone'],
    [`${'очень '.repeat(MAX_GRATITUDE_WORDS)}спасибо`, `longer than ${MAX_GRATITUDE_WORDS} words: about something else`],
    ['Thanks for nothing', 'sarcasm']
  ]
  for (const [text, why] of no) t.notOk(thanks(text), `not thanks: ${JSON.stringify(text.slice(0, 40))} (${why})`)
  const custom = gratitudeTest({ patterns: ['danke*', 'gracias'], exclusions: [] })
  t.ok(custom('Danke schön') && custom('¡Gracias!'), 'a company\'s own patterns')
  t.notOk(custom('Спасибо'), 'which replace the defaults')
})

t.test('reactions over HTTP, the old route and NATS reach the contact through the holder; bad input gets 400', async (t) => {
  const settings = await sessionCluster(t)
  const holder = await startSessionReplica(t, settings)
  const other = await startSessionReplica(t, settings, { defaultCompanyId: undefined })
  // One that prefers `holder`: once `other` has settled, balancing would otherwise move it there.
  const companyId = companyPreferring(holder, [holder, other])
  const events = await linkCompany(holder, companyId, settings, t)
  t.ok(events)
  const sent = () => holder.app.testWhatsApp!.sent.get(companyId) ?? []

  const viaHttp = await other.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/reaction`,
    payload: { phone: '+7 900 123-45-67', emoji: '❤️', messageId: 'MSG-1' }
  })
  t.equal(viaHttp.statusCode, 200, 'through a replica that does not hold the company')
  t.match(viaHttp.json(), {
    success: true,
    companyId,
    phone: '79001234567',
    emoji: '❤️',
    reactedTo: 'MSG-1',
    accepted: true,
    messageId: /^3EB0/
  })
  t.match(sent().at(-1), { to: '79001234567@s.whatsapp.net', reaction: { messageId: 'MSG-1', emoji: '❤️' } })

  const legacy = await other.app.inject({
    method: 'POST',
    url: '/api/whatsapp/reaction',
    payload: { phone: '89001234567', emoji: '👍🏽', messageId: 'MSG-2', companyId }
  })
  t.equal(legacy.statusCode, 200, 'the old route is still served')
  t.match(sent().at(-1), { reaction: { messageId: 'MSG-2', emoji: '👍🏽' } })
  const noCompany = await other.app.inject({
    method: 'POST',
    url: '/api/whatsapp/reaction',
    payload: { phone: '89001234567', emoji: '👍', messageId: 'MSG-3' }
  })
  t.equal(noCompany.statusCode, 400)
  t.match(noCompany.json(), { error: { code: 'VALIDATION_ERROR', message: /companyId is required/ } })

  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  t.match(
    await client.react(companyId, { phone: '79001234567', emoji: '👨‍👩‍👧', messageId: 'MSG-4' }),
    { success: true, emoji: '👨‍👩‍👧' },
    'NATS wa.cmd.<id>.react'
  )
  t.match(
    await client.react(companyId, { phone: '79001234567', emoji: '', messageId: 'MSG-4' }),
    { success: true, emoji: '' },
    'an empty emoji removes the reaction'
  )
  t.match(sent().at(-1), { reaction: { messageId: 'MSG-4', emoji: '' } })
  t.match(
    await client.react(companyId, { phone: '79001234567', emoji: '🔥', messageId: 'OWN-1', fromMe: true }),
    { success: true },
    'reacting to our own message'
  )

  const before = sent().length
  for (const [payload, field] of [
    [{ phone: '79001234567', emoji: 'abcd', messageId: 'M' }, 'emoji'],
    [{ phone: '79001234567', emoji: '❤️❤️', messageId: 'M' }, 'emoji'],
    [{ phone: '79001234567', emoji: '❤️', messageId: '' }, 'messageId'],
    [{ phone: '79001234567', emoji: '❤️', messageId: 'x'.repeat(129) }, 'messageId'],
    [{ phone: 'not a phone', emoji: '❤️', messageId: 'M' }, 'phone']
  ] as const) {
    const response = await other.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/reaction`, payload })
    t.equal(response.statusCode, 400, `bad ${field} → 400`)
    t.match(response.json(), {
      success: false,
      error: { code: /VALIDATION_ERROR|INVALID_PHONE/, message: new RegExp(field === 'phone' ? 'phone|number' : field) }
    })
  }
  await t.rejects(
    client.react(companyId, { phone: '79001234567', emoji: 'ok', messageId: 'M' }),
    { code: 'VALIDATION_ERROR' },
    'NATS gets the same error with a code'
  )
  t.equal(sent().length, before, 'nothing was sent for bad input')
})

t.test('the opt-in ❤️ to thanks: once per message, only when enabled, with the company\'s own emoji and patterns', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  const whatsapp = replica.app.testWhatsApp!
  const reactions = () => (whatsapp.sent.get(companyId) ?? []).filter((sent) => sent.reaction)

  const off = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/auto-reactions` })
  t.match(
    off.json(),
    { success: true, rules: { enabled: false, emoji: '❤️', patterns: DEFAULT_GRATITUDE } },
    'off by default, with the defaults shown'
  )
  const ignored = whatsapp.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'Спасибо!' })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(reactions(), [], `no reaction to ${ignored} while off`)

  const on = await replica.app.inject({
    method: 'PUT',
    url: `/api/whatsapp/sessions/${companyId}/auto-reactions`,
    payload: { enabled: true }
  })
  t.equal(on.statusCode, 200)
  const thanked = whatsapp.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'Спасибо большое, всё супер!' })
  t.ok(await waitFor(() => reactions().length === 1, 5_000), 'a reaction to thanks')
  t.match(reactions()[0], { to: '79001234567@s.whatsapp.net', reaction: { messageId: thanked, emoji: '❤️' } })
  whatsapp.deliver(companyId, { id: thanked, from: '79001234567@s.whatsapp.net', text: 'Спасибо большое, всё супер!' })
  whatsapp.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'Можно перенести на 12:00?' })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(reactions().length, 1, 'the same message delivered again gets no second reaction, a question gets none')

  const bad = await replica.app.inject({
    method: 'PUT',
    url: `/api/whatsapp/sessions/${companyId}/auto-reactions`,
    payload: { enabled: true, emoji: 'heart' }
  })
  t.equal(bad.statusCode, 400, 'the rule\'s emoji is checked too')
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  const custom = await client.setAutoReactionRules(companyId, { enabled: true, emoji: '🙏', patterns: ['thanks'], exclusions: [] })
  t.match(custom, { rules: { enabled: true, emoji: '🙏', patterns: ['thanks'] } }, 'rules over NATS')
  const english = whatsapp.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'Thanks!' })
  t.ok(await waitFor(() => reactions().length === 2, 5_000))
  t.match(reactions()[1], { reaction: { messageId: english, emoji: '🙏' } })
  whatsapp.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'Спасибо!' })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(reactions().length, 2, 'the company\'s patterns replaced the defaults')
  t.match(await client.autoReactionRules(companyId), { rules: { emoji: '🙏' } })
})
