import t from 'tap'
import { checkTarget, isPublicAddress, SafeRequestError } from '../core/net/safe-request.ts'

/** checkTarget's refusal of a URL, or undefined when it is let through. */
async function refusal (url: string): Promise<SafeRequestError | undefined> {
  try {
    await checkTarget(url, false)
    return undefined
  } catch (err) {
    if (err instanceof SafeRequestError) return err
    throw err
  }
}

t.test('IPv6 forms that reach inside the network are refused, each one', async (t) => {
  const forms = [
    ['6to4 (2002::/16), carrying 10.0.3.7', '2002:a00:307::1'],
    ['6to4 (2002::/16), carrying 127.0.0.1', '2002:7f00:1::'],
    ['local-use NAT64 (64:ff9b:1::/48), translating to 10.0.3.7', '64:ff9b:1::a00:307'],
    ['IPv4-compatible (::/96), carrying 127.0.0.1', '::7f00:1'],
    ['IPv4-compatible (::/96), carrying 10.0.3.7', '::a00:307'],
    ['site-local (fec0::/10)', 'fec0::1'],
    ['site-local (fec0::/10), its last block', 'feff::1']
  ] as const
  for (const [name, address] of forms) {
    t.notOk(isPublicAddress(address), `${name}: ${address}`)
    const refused = await refusal(`http://[${address}]/hook`)
    t.equal(refused?.reason, 'forbidden', `${name}: a URL to [${address}] is refused`)
  }
  for (const address of ['2001:4860:4860::8888', '2003::1']) {
    t.ok(isPublicAddress(address), `${address} is still public`)
  }
})

t.test('[::ffff:127.0.0.1] (which URL parsing turns into ::ffff:7f00:1) is refused', async (t) => {
  t.equal(new URL('http://[::ffff:127.0.0.1]/').hostname, '[::ffff:7f00:1]', 'the form the check sees')
  for (const url of ['http://[::ffff:127.0.0.1]/x', 'https://[::ffff:7f00:1]:8443/x', 'http://[::ffff:10.0.3.7]/x']) {
    const refused = await refusal(url)
    t.equal(refused?.reason, 'forbidden', url)
    t.equal(refused?.message, 'its host is not a public address', url)
  }
})

t.test('a refusal says only "not a public address", never what the host resolves to', async (t) => {
  for (const [url, address] of [
    ['http://localhost:9/x', '127.0.0.1'], ['http://10.0.3.7/x', '10.0.3.7'], ['http://[fd00::7]/x', 'fd00::7'],
    ['http://[::ffff:127.0.0.1]/x', '7f00']
  ] as const) {
    const refused = await refusal(url)
    t.equal(refused?.reason, 'forbidden', url)
    t.equal(refused?.message, 'its host is not a public address', url)
    t.notOk(refused?.message.includes(address), `${url}: the address is not named`)
  }
})
