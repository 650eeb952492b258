import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  ANY_REPLICA_QUEUE, CompanyParams, CONTROL_SCOPES, EmptyRequest, ErrorCode, ProxyCheckReply, ProxyReply, ProxySetRequest,
  type ProxyDescription
} from '../../contracts/index.ts'
import { BoundedMap } from '../../core/bounded-map.ts'
import { GatewayError } from '../../core/errors.ts'
import { checkTunnel, describeProxy, parseProxyUrl, proxyRoute, rendezvousPick, type ProxyRoute } from '../../core/proxy.ts'
import type { ProxyOptions } from './settings.ts'
import { proxyMigrations, ProxyStore } from './store.ts'

export { settings, type ProxyOptions } from './settings.ts'
export const migrations = proxyMigrations
export type { ProxyRoute } from '../../core/proxy.ts'
export const resealProxies = (...args: ConstructorParameters<typeof ProxyStore>) => new ProxyStore(...args).reseal()

/** The proxy plugin's public face. */
export interface Proxies {
  /**
   * The route a company's WhatsApp traffic takes now: through its own proxy, else WA_PROXY_URLS' pick,
   * else WA_PROXY_URL; undefined: direct.
   */
  routeOf: (companyId: string) => Promise<ProxyRoute | undefined>
  /** Sets a company's own proxy (a URL of PROXY_SCHEMES, else a 400 naming `field`); its holder reconnects through it. */
  set: (companyId: string, url: string, field?: string) => Promise<ProxyReply>
  /** Called on every replica when a company's proxy changed (set or removed anywhere). */
  onChange: (listener: (companyId: string) => void) => void
  /** Where a check tunnels to: WhatsApp's WebSocket URL, as the connections use it. */
  useEndpoint: (url: string) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    proxies: Proxies
  }
}

const TAGS = ['proxy']
const BASE = '/api/whatsapp/sessions/:companyId/proxy'
/** WhatsApp Web's WebSocket, Baileys' default. */
const WHATSAPP_ENDPOINT = 'wss://web.whatsapp.com/ws/chat'
/** Routes (their agents keep connections to the proxy) by proxy URL: a reconnect reuses them. */
const ROUTES_KEPT = 10_000

/**
 * A proxy per company: its own (sealed in PostgreSQL, set at initialize or by PUT …/proxy), or one
 * of the deployment's. Any replica answers; a change is published, and the company's holder
 * reconnects through the new route under the same lease.
 */
export default fp<ProxyOptions>(async (app, options) => {
  const store = new ProxyStore(() => app.orm.em, app.sealer)
  const routes = new BoundedMap<string, Promise<ProxyRoute>>(ROUTES_KEPT)
  const listeners: ((companyId: string) => void)[] = []
  let endpoint = WHATSAPP_ENDPOINT

  /** The company's proxy URL and where it comes from. */
  const chosen = async (companyId: string): Promise<{ url: string, source: ProxyDescription['source'] } | undefined> => {
    const own = await store.get(companyId)
    if (own) return { url: own, source: 'company' }
    const picked = rendezvousPick(companyId, options.waProxyUrls)
    if (picked) return { url: picked, source: 'list' }
    return options.waProxyUrl ? { url: options.waProxyUrl, source: 'default' } : undefined
  }
  const routeFor = (url: string) => {
    let route = routes.get(url)
    if (!route) {
      route = proxyRoute(new URL(url))
      // A route that could not be made is made again next time, not kept.
      route.catch(() => routes.delete(url))
      routes.set(url, route)
    }
    return route
  }
  const described = (proxy: Awaited<ReturnType<typeof chosen>>): ProxyDescription | null =>
    proxy ? { source: proxy.source, ...describeProxy(new URL(proxy.url)) } : null
  const describe = async (companyId: string): Promise<ProxyReply> =>
    ({ success: true, companyId, proxy: described(await chosen(companyId)) })
  const changed = (companyId: string) => app.bus.publish(app.subjects.proxyChanged, { companyId })

  const set = async (companyId: string, raw: string, field = 'url'): Promise<ProxyReply> => {
    const url = parseProxyUrl(raw)
    // The refusal does not repeat the URL: it may hold a password.
    if (!url) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, `${field} must be an http://, https://, socks5:// or socks5h:// URL with a host`, {
        details: [{ field, message: 'is not a proxy URL this gateway takes' }]
      })
    }
    await store.set(companyId, url.href)
    changed(companyId)
    // What was just stored is the company's proxy now: no need to read it back and open it again.
    return { success: true, companyId, proxy: described({ url: url.href, source: 'company' }) }
  }
  const remove = async (companyId: string): Promise<ProxyReply> => {
    if (await store.remove(companyId)) changed(companyId)
    return describe(companyId)
  }
  const check = async (companyId: string): Promise<ProxyCheckReply> => {
    const proxy = await chosen(companyId)
    const result = await checkTunnel(proxy ? await routeFor(proxy.url) : undefined, endpoint, options.proxyCheckTimeoutMs)
    return { success: true, companyId, proxy: described(proxy), endpoint, ...result }
  }

  const routesOf = app.withTypeProvider<TypeBoxTypeProvider>()
  const CompanyOnly = Type.Object({ companyId: CompanyParams.properties.companyId })
  routesOf.get(BASE, {
    config: { access: { scope: CONTROL_SCOPES['proxy.get'], company: 'params' } },
    schema: {
      operationId: 'proxy',
      tags: TAGS,
      summary: 'The proxy the company\'s WhatsApp traffic goes through (its own or the deployment\'s), without its password',
      params: CompanyOnly,
      response: { 200: ProxyReply }
    }
  }, (request) => describe(request.params.companyId))
  routesOf.put(BASE, {
    config: { access: { scope: CONTROL_SCOPES['proxy.set'], company: 'params' } },
    schema: {
      operationId: 'setProxy',
      tags: TAGS,
      summary: 'Send every byte of the company\'s WhatsApp traffic through this proxy; a connected company reconnects through it',
      params: CompanyOnly,
      body: ProxySetRequest,
      response: { 200: ProxyReply }
    }
  }, (request) => set(request.params.companyId, request.body.url))
  routesOf.delete(BASE, {
    config: { access: { scope: CONTROL_SCOPES['proxy.delete'], company: 'params' } },
    schema: {
      operationId: 'removeProxy',
      tags: TAGS,
      summary: 'Remove the company\'s own proxy: it goes through the deployment\'s (WA_PROXY_URLS, WA_PROXY_URL) or directly',
      params: CompanyOnly,
      response: { 200: ProxyReply }
    }
  }, (request) => remove(request.params.companyId))
  routesOf.get(`${BASE}/check`, {
    config: { access: { scope: CONTROL_SCOPES['proxy.check'], company: 'params' } },
    schema: {
      operationId: 'checkProxy',
      tags: TAGS,
      summary: 'Open a tunnel through the company\'s proxy to WhatsApp and time it; a failure says whether the proxy is' +
        ' unreachable or refused the credentials',
      params: CompanyOnly,
      response: { 200: ProxyCheckReply }
    }
  }, (request) => check(request.params.companyId))

  const handlers = [
    app.bus.handle(app.subjects.proxy('*', 'get'), { request: EmptyRequest, reply: ProxyReply, queue: ANY_REPLICA_QUEUE },
      (_request, context) => describe(context.companyId)),
    app.bus.handle(app.subjects.proxy('*', 'set'), { request: ProxySetRequest, reply: ProxyReply, queue: ANY_REPLICA_QUEUE },
      (request, context) => set(context.companyId, request.url)),
    app.bus.handle(app.subjects.proxy('*', 'delete'), { request: EmptyRequest, reply: ProxyReply, queue: ANY_REPLICA_QUEUE },
      (_request, context) => remove(context.companyId)),
    app.bus.handle(app.subjects.proxy('*', 'check'), { request: EmptyRequest, reply: ProxyCheckReply, queue: ANY_REPLICA_QUEUE },
      (_request, context) => check(context.companyId)),
    // Every replica hears of every change: the one holding the company reconnects it.
    app.bus.handle(app.subjects.proxyChanged, { request: Type.Object({ companyId: Type.String() }) }, async ({ companyId }) => {
      for (const listener of listeners) listener(companyId)
    })
  ]

  app.decorate('proxies', {
    routeOf: async (companyId) => {
      const proxy = await chosen(companyId)
      return proxy ? routeFor(proxy.url) : undefined
    },
    set,
    onChange: (listener) => { listeners.push(listener) },
    useEndpoint: (url) => { endpoint = url }
  } satisfies Proxies)

  app.addHook('onClose', async () => {
    await Promise.all(handlers.map((handler) => handler.close()))
    for (const made of routes.values()) {
      const route = await made.catch(() => undefined)
      route?.agent.destroy()
      await route?.dispatcher.close().catch(() => {})
    }
  })
}, { name: 'proxy', dependencies: ['config', 'bus', 'db', 'sealing'] })
