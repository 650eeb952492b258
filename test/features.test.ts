import t from 'tap'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { resolveFeatures, type FeatureModule } from '../core/features.ts'
import { build } from './helpers/build.ts'

function feature (name: string, dependencies: string[], onRegister?: (app: FastifyInstance) => void): FeatureModule {
  return { default: fp(async (app: FastifyInstance) => { onRegister?.(app) }, { name, dependencies }) }
}

t.test('features are ordered after what they depend on, whatever the listing order', async (t) => {
  const ordered = resolveFeatures([
    feature('reactions', ['session-pool', 'rate-limit']),
    feature('rate-limit', ['session-pool']),
    feature('session-pool', ['bus', 'phone']),
    feature('phone', ['bus'])
  ], [])
  t.same(ordered.map((f) => f.name), ['phone', 'session-pool', 'rate-limit', 'reactions'])
})

t.test('a disabled plugin is left out', async (t) => {
  const ordered = resolveFeatures([feature('phone', []), feature('metrics', [])], ['metrics'])
  t.same(ordered.map((f) => f.name), ['phone'])
})

t.test('a plugin whose dependency is disabled fails with a clear message', async (t) => {
  t.throws(() => resolveFeatures([feature('session-pool', []), feature('reactions', ['session-pool'])], ['session-pool']), {
    name: 'FeatureError',
    message: 'plugin "reactions" needs plugin "session-pool", which DISABLED_PLUGINS switches off; enable it or disable "reactions" too'
  })
})

t.test('unknown names and circles are refused', async (t) => {
  t.throws(() => resolveFeatures([feature('phone', [])], ['phnoe']), { message: /DISABLED_PLUGINS names an unknown plugin "phnoe" \(known: phone\)/ })
  t.throws(() => resolveFeatures([feature('a', ['b'])], []), { message: /plugin "a" needs "b", which is not a known plugin/ })
  t.throws(() => resolveFeatures([feature('a', ['b']), feature('b', ['a'])], []), { message: /circle: a -> b -> a/ })
  t.throws(() => resolveFeatures([{ default: async () => {} }], []), { message: /has no name/ })
})

t.test('the app registers features in dependency order after the core plugins', async (t) => {
  const seen: string[] = []
  const record = (name: string) => (app: FastifyInstance) => {
    t.ok(app.hasDecorator('bus'), `${name} sees the core bus`)
    seen.push(name)
  }
  const app = await build(t, {
    features: [feature('second', ['first'], record('second')), feature('first', ['bus'], record('first'))]
  })
  t.same(seen, ['first', 'second'])
  t.ok(app.hasDecorator('orm'))
})

t.test('a feature disabled by config is not loaded, and its routes are gone', async (t) => {
  const app = await build(t, { config: { disabledPlugins: ['metrics', 'reactions', 'rate-limit', 'session-pool', 'phone'] } })
  t.notOk(app.hasDecorator('phone'))
  const response = await app.inject({ method: 'GET', url: '/api/phone/normalize?phone=89001234567' })
  t.equal(response.statusCode, 404)
  t.equal(response.json().error.code, 'NOT_FOUND')
})

t.test('start-up fails clearly when a dependency is switched off', async (t) => {
  await t.rejects(build(t, {
    config: { disabledPlugins: ['phone'] },
    features: [(await import('../plugins/phone/index.ts')), feature('needs-phone', ['phone'])]
  }), { message: /plugin "needs-phone" needs plugin "phone", which DISABLED_PLUGINS switches off/ })
})
