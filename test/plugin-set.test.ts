import t from 'tap'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { resolvePlugins, type PluginModule } from '../core/plugin-set.ts'
import { SOCKET_PLUGINS, build } from './helpers/build.ts'

function plugin (name: string, dependencies: string[], onRegister?: (app: FastifyInstance) => void): PluginModule {
  return { default: fp(async (app: FastifyInstance) => { onRegister?.(app) }, { name, dependencies }) }
}

t.test('plugins are ordered after what they depend on, whatever the listing order', async (t) => {
  const ordered = resolvePlugins([
    plugin('reactions', ['session-pool', 'rate-limit']),
    plugin('rate-limit', ['session-pool']),
    plugin('session-pool', ['bus', 'phone']),
    plugin('phone', ['bus'])
  ], [])
  t.same(ordered.map((loaded) => loaded.name), ['phone', 'session-pool', 'rate-limit', 'reactions'])
})

t.test('a disabled plugin is left out', async (t) => {
  const ordered = resolvePlugins([plugin('phone', []), plugin('metrics', [])], ['metrics'])
  t.same(ordered.map((loaded) => loaded.name), ['phone'])
})

t.test('a plugin whose dependency is disabled fails with a clear message', async (t) => {
  t.throws(() => resolvePlugins([plugin('session-pool', []), plugin('reactions', ['session-pool'])], ['session-pool']), {
    name: 'PluginSetError',
    message: 'plugin "reactions" needs plugin "session-pool", which DISABLED_PLUGINS switches off; enable it or disable "reactions" too'
  })
})

t.test('unknown names and circles are refused', async (t) => {
  t.throws(() => resolvePlugins([plugin('phone', [])], ['phnoe']),
    { message: /DISABLED_PLUGINS names an unknown plugin "phnoe" \(known: phone\)/ })
  t.throws(() => resolvePlugins([plugin('a', ['b'])], []), { message: /plugin "a" needs "b", which is not a known plugin/ })
  t.throws(() => resolvePlugins([plugin('a', ['b']), plugin('b', ['a'])], []), { message: /circle: a -> b -> a/ })
  t.throws(() => resolvePlugins([{ default: async () => {} }], []), { message: /has no name/ })
})

t.test('the app registers plugins in dependency order after the core plugins', async (t) => {
  const seen: string[] = []
  const record = (name: string) => (app: FastifyInstance) => {
    t.ok(app.hasDecorator('bus'), `${name} sees the core bus`)
    seen.push(name)
  }
  const app = await build(t, {
    plugins: [plugin('second', ['first'], record('second')), plugin('first', ['bus'], record('first'))]
  })
  t.same(seen, ['first', 'second'])
  t.ok(app.hasDecorator('orm'))
})

t.test('a plugin disabled by config is not loaded, and its routes are gone', async (t) => {
  const disabledPlugins = ['metrics', 'reactions', 'rate-limit', 'session-pool', ...SOCKET_PLUGINS, 'conversations', 'phone']
  const app = await build(t, { config: { disabledPlugins } })
  t.notOk(app.hasDecorator('phone'))
  const response = await app.inject({ method: 'GET', url: '/api/phone/normalize?phone=89001234567' })
  t.equal(response.statusCode, 404)
  t.equal(response.json().error.code, 'NOT_FOUND')
})

t.test('start-up fails clearly when a dependency is switched off', async (t) => {
  await t.rejects(build(t, {
    config: { disabledPlugins: ['phone'] },
    plugins: [(await import('../plugins/phone/index.ts')), plugin('needs-phone', ['phone'])]
  }), { message: /plugin "needs-phone" needs plugin "phone", which DISABLED_PLUGINS switches off/ })
})

t.test('each plugin receives its own settings as options, and only those', async (t) => {
  let received: Record<string, unknown> | undefined
  const withSettings: PluginModule = {
    default: fp(async (_app: FastifyInstance, options: Record<string, unknown>) => { received = options }, { name: 'with-settings' }),
    settings: {
      greeting: {
        env: 'GREETING', describe: 'A greeting for the test', expected: 'text', fallback: () => 'hello', parse: (raw: string) => raw
      }
    }
  }
  await build(t, { plugins: [withSettings], config: { greeting: 'hi' } as Record<string, unknown> })
  t.same(received, { greeting: 'hi' })
})
