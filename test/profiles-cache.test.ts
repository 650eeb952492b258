import t from 'tap'
import { PictureCache, urlExpiry } from '../plugins/profiles/picture-cache.ts'

// The holder's cache of contacts' picture answers, on a clock of the test's own.
const HOUR_MS = 3_600_000
const NOW = Date.parse('2026-12-06T12:00:00Z')
const urlExpiring = (at: number) => `https://pps.whatsapp.net/v/1.jpg?ccb=11-4&oe=${Math.floor(at / 1000).toString(16).toUpperCase()}&_nc_cat=1`
const set = (url: string) => ({ status: 'set' as const, url, expiresAt: urlExpiry(url) })

t.test('urlExpiry reads oe= as hex Unix seconds, and nothing else', async (t) => {
  t.equal(urlExpiry(urlExpiring(NOW + HOUR_MS)), new Date(NOW + HOUR_MS).toISOString())
  t.equal(urlExpiry('https://pps.whatsapp.net/v/1.jpg?oe=6B1891D1'), new Date(0x6B1891D1 * 1000).toISOString(), 'upper-case hex')
  t.equal(urlExpiry('https://pps.whatsapp.net/v/1.jpg?oe=6b1891d1'), new Date(0x6B1891D1 * 1000).toISOString(), 'lower-case hex')
  const without = ['https://pps.whatsapp.net/v/1.jpg', 'https://x/1.jpg?oe=', 'https://x/1.jpg?oe=zz', 'https://x/1.jpg?oe=1234567890abcdef']
  for (const url of [...without, 'not a url']) {
    t.equal(urlExpiry(url), null, url)
  }
})

t.test('a URL is kept until a minute before it expires, at most the bound; per company; blocks drop it', async (t) => {
  let now = NOW
  const cache = new PictureCache(HOUR_MS, () => now)
  const soon = set(urlExpiring(NOW + 10 * 60_000))
  const later = set(urlExpiring(NOW + 48 * HOUR_MS))
  cache.set('salon', 'anna', 'image', soon)
  cache.set('salon', 'boris', 'image', later)
  t.same(cache.get('salon', 'anna', 'image'), soon)
  t.equal(cache.get('salon', 'anna', 'preview'), undefined, 'each quality apart')
  t.equal(cache.get('other', 'anna', 'image'), undefined, 'each company apart: what a contact shows depends on who asks')
  now = NOW + 9 * 60_000 - 1
  t.same(cache.get('salon', 'anna', 'image'), soon)
  now = NOW + 9 * 60_000
  t.equal(cache.get('salon', 'anna', 'image'), undefined, 'gone a minute before the URL expires')
  t.same(cache.get('salon', 'boris', 'image'), later)
  now = NOW + HOUR_MS
  t.equal(cache.get('salon', 'boris', 'image'), undefined, 'a URL valid for days is kept for the bound only')

  cache.set('salon', 'boris', 'image', later)
  cache.set('salon', 'boris', 'preview', later)
  cache.set('salon', 'boris-lid', 'image', later)
  cache.forget('salon', ['boris', 'boris-lid', null])
  t.equal(cache.get('salon', 'boris', 'image'), undefined, 'a block drops both qualities')
  t.equal(cache.get('salon', 'boris', 'preview'), undefined)
  t.equal(cache.get('salon', 'boris-lid', 'image'), undefined, 'and by its LID')

  cache.set('salon', 'vera', 'image', set(urlExpiring(NOW + HOUR_MS + 30_000)))
  t.equal(cache.get('salon', 'vera', 'image'), undefined, 'a URL in its last minute is not kept at all')
})

t.test('"none" and "hidden" are kept a sixth of the bound; a bound of 0 keeps nothing', async (t) => {
  let now = NOW
  const cache = new PictureCache(HOUR_MS, () => now)
  cache.set('salon', 'anna', 'image', { status: 'none', url: null, expiresAt: null })
  cache.set('salon', 'boris', 'image', { status: 'hidden', url: null, expiresAt: null })
  now = NOW + 10 * 60_000 - 1
  t.match(cache.get('salon', 'anna', 'image'), { status: 'none' })
  t.match(cache.get('salon', 'boris', 'image'), { status: 'hidden' })
  now = NOW + 10 * 60_000
  t.equal(cache.get('salon', 'anna', 'image'), undefined)

  const off = new PictureCache(0, () => now)
  off.set('salon', 'anna', 'image', set(urlExpiring(now + 48 * HOUR_MS)))
  off.set('salon', 'boris', 'image', { status: 'none', url: null, expiresAt: null })
  t.equal(off.get('salon', 'anna', 'image'), undefined)
  t.equal(off.get('salon', 'boris', 'image'), undefined)
})
