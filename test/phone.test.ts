import t from 'tap'
import { createGatewayClient, GatewayClientError } from '../contracts/index.ts'
import { build } from './helpers/build.ts'

/** [input, country (undefined = DEFAULT_COUNTRY, RU), expected E.164 digits] */
const valid: [string, string | undefined, string][] = [
  // The old system's Russian rules
  ['89001234567', undefined, '79001234567'],
  ['+7 (900) 123-45-67', undefined, '79001234567'],
  ['9001234567', undefined, '79001234567'],
  ['79001234567', undefined, '79001234567'],
  ['+79001234567', undefined, '79001234567'],
  ['8 (900) 123-45-67', undefined, '79001234567'],
  ['8-900-123-45-67', undefined, '79001234567'],
  ['  89001234567  ', undefined, '79001234567'],
  ['+7 700 123 4567', undefined, '77001234567'],
  // International numbers, validated by libphonenumber-js
  ['+44 7911 123456', undefined, '447911123456'],
  ['+1 415 555 2671', undefined, '14155552671'],
  ['+1 (415) 555-2671', undefined, '14155552671'],
  ['447911123456', undefined, '447911123456'],
  ['14155552671', undefined, '14155552671'],
  ['+49 1512 3456789', undefined, '4915123456789'],
  ['+380 50 123 4567', undefined, '380501234567'],
  // National formats of other countries, with the country given
  ['07911 123456', 'GB', '447911123456'],
  ['(415) 555-2671', 'US', '14155552671'],
  ['0049 1512 3456789', 'DE', '4915123456789'],
  ['015123456789', 'de', '4915123456789'],
  // Phone JIDs name the same number
  ['79001234567@s.whatsapp.net', undefined, '79001234567'],
  ['79001234567:12@s.whatsapp.net', undefined, '79001234567'],
  ['79001234567@c.us', undefined, '79001234567']
]

/** [input, country, reason the error must give] */
const invalid: [unknown, string | undefined, RegExp][] = [
  ['123', undefined, /3 digits; expected 10 to 15/],
  ['12345678901234567', undefined, /17 digits; expected 10 to 15/],
  ['7900123456789012', undefined, /16 digits/],
  ['+44 1234', undefined, /6 digits/],
  ['abc', undefined, /letters or symbols/],
  ['7900abc4567', undefined, /letters or symbols/],
  ['89001234567 ext 5', undefined, /letters or symbols/],
  ['+7 (900) 123-45-67;', undefined, /letters or symbols/],
  ['', undefined, /empty/],
  ['   ', undefined, /empty/],
  [123, undefined, /must be a string, got number/],
  [null, undefined, /must be a string, got null/],
  [undefined, undefined, /must be a string, got undefined/],
  [{}, undefined, /must be a string, got object/],
  [['79001234567'], undefined, /must be a string/],
  ['+999 1234567890', undefined, /not a possible phone number/],
  ['+1 415 555 26712', undefined, /not a possible phone number/],
  ['123456789@lid', undefined, /not a phone JID/],
  ['7'.repeat(80), undefined, /longer than 64 characters/],
  ['89001234567', 'XX', /country "XX" is not an ISO 3166-1 alpha-2 code/]
]

t.test('phone rules through the decorator', async (t) => {
  const app = await build(t)
  t.ok(valid.length + invalid.length >= 30, 'at least 30 cases')
  for (const [input, country, expected] of valid) {
    t.equal(app.phone.normalize(input, country), expected, `${input} (${country ?? 'RU'}) -> ${expected}`)
  }
  for (const [input, country, reason] of invalid) {
    t.throws(() => app.phone.normalize(input, country), { code: 'INVALID_PHONE', message: reason }, `${JSON.stringify(input)} is refused`)
  }
})

t.test('toJid formats phones and passes LID and group JIDs through after validation', async (t) => {
  const app = await build(t)
  t.equal(app.phone.toJid('89001234567'), '79001234567@s.whatsapp.net')
  t.equal(app.phone.toJid('+44 7911 123456'), '447911123456@s.whatsapp.net')
  t.equal(app.phone.toJid('79001234567:3@s.whatsapp.net'), '79001234567@s.whatsapp.net', 'device part dropped')
  t.equal(app.phone.toJid('123456789012345@lid'), '123456789012345@lid')
  t.equal(app.phone.toJid('120363043123456789@g.us'), '120363043123456789@g.us')
  t.equal(app.phone.toJid('79001234567-1612345678@g.us'), '79001234567-1612345678@g.us', 'old-style group id')
  t.throws(() => app.phone.toJid('abc@lid'), { code: 'INVALID_PHONE', message: /not a valid LID JID/ })
  t.throws(() => app.phone.toJid('x.y@g.us'), { code: 'INVALID_PHONE', message: /not a valid group JID/ })
  t.throws(() => app.phone.toJid('79001234567@example.com'), { code: 'INVALID_PHONE', message: /unknown JID server "example.com"/ })
  t.throws(() => app.phone.toJid(42), { code: 'INVALID_PHONE' })
})

t.test('DEFAULT_COUNTRY changes how national numbers are read', async (t) => {
  const app = await build(t, { config: { defaultCountry: 'GB' } })
  t.equal(app.phone.normalize('07911 123456'), '447911123456')
  t.equal(app.phone.normalize('+7 (900) 123-45-67'), '79001234567', 'numbers with a country code are unaffected')
})

t.test('the same answer through the decorator, HTTP and NATS', async (t) => {
  const app = await build(t)
  const client = createGatewayClient(app.nats, { namespace: app.config.natsNamespace })
  const inputs: [string, string | undefined][] = [
    ['89001234567', undefined], ['+44 7911 123456', undefined], ['07911 123456', 'GB'], ['9001234567', undefined],
    ['123', undefined], ['abc', undefined], ['+999 1234567890', undefined], ['89001234567', 'XX']
  ]
  for (const [phone, country] of inputs) {
    let direct: { e164: string, jid: string } | { code: string, message: string }
    try {
      const e164 = app.phone.normalize(phone, country)
      direct = { e164, jid: app.phone.toJid(e164) }
    } catch (err) {
      direct = { code: (err as { code: string }).code, message: (err as Error).message }
    }

    const query = new URLSearchParams({ phone, ...(country ? { country } : {}) })
    const response = await app.inject({ method: 'GET', url: `/api/phone/normalize?${query}` })
    const body = response.json()

    let overNats: typeof direct
    try {
      const reply = await client.normalizePhone(phone, country)
      overNats = { e164: reply.e164, jid: reply.jid }
    } catch (err) {
      t.type(err, GatewayClientError)
      overNats = { code: (err as GatewayClientError).code, message: (err as Error).message }
    }

    if ('e164' in direct) {
      t.equal(response.statusCode, 200, `${phone}: HTTP 200`)
      t.same(body, { success: true, ...direct }, `${phone}: HTTP matches the decorator`)
    } else {
      t.equal(response.statusCode, 400, `${phone}: HTTP 400`)
      t.same(body, { success: false, error: direct }, `${phone}: HTTP error matches the decorator`)
    }
    t.same(overNats, direct, `${phone}: NATS matches the decorator`)
  }
})

t.test('malformed requests get a validation error naming the field', async (t) => {
  const app = await build(t)
  const missing = await app.inject({ method: 'GET', url: '/api/phone/normalize' })
  t.equal(missing.statusCode, 400)
  t.same(missing.json(), {
    success: false,
    error: {
      code: 'VALIDATION_ERROR',
      message: 'querystring/phone is required',
      details: [{ field: 'querystring/phone', message: 'is required' }]
    }
  })
  const badCountry = await app.inject({ method: 'GET', url: '/api/phone/normalize?phone=89001234567&country=RUS' })
  t.equal(badCountry.statusCode, 400)
  t.match(badCountry.json().error, { code: 'VALIDATION_ERROR', details: [{ field: 'querystring/country' }] })

  const notJson = await app.nats.request(app.subjects.phoneNormalize, '{not json', { timeout: 2000 })
  t.match(notJson.json(), { success: false, error: { code: 'BAD_REQUEST', message: 'payload is not valid JSON' } })
  t.equal(notJson.headers?.get('Nats-Service-Error-Code'), '400')
  const wrongType = await app.nats.request(app.subjects.phoneNormalize, JSON.stringify({ phone: 79001234567 }), { timeout: 2000 })
  t.match(wrongType.json(), {
    success: false,
    error: { code: 'VALIDATION_ERROR', details: [{ field: 'payload/phone', message: 'must be string' }] }
  })
})
