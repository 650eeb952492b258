import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

const ProxyUrl = Type.String({
  minLength: 8,
  maxLength: 512,
  description: 'http://, https://, socks5:// or socks5h:// (the proxy resolves names), with user:password@ when it asks for them.' +
    ' Kept sealed; never shown again with its password'
})

export const ProxySetRequest = Type.Object({ url: ProxyUrl }, { additionalProperties: false })
export type ProxySetRequest = Static<typeof ProxySetRequest>

export const ProxyDescription = Type.Object({
  source: Type.Union([Type.Literal('company'), Type.Literal('list'), Type.Literal('default')], {
    description: '`company`: set for this company; `list`: its pick from WA_PROXY_URLS; `default`: WA_PROXY_URL'
  }),
  scheme: Type.Union([Type.Literal('http'), Type.Literal('https'), Type.Literal('socks5'), Type.Literal('socks5h')]),
  host: Type.String(),
  port: Type.Integer(),
  username: Type.Union([Type.String(), Type.Null()]),
  hasPassword: Type.Boolean({ description: 'A password is set (it is never shown)' })
}, { description: 'The proxy the company\'s WhatsApp traffic goes through' })
export type ProxyDescription = Static<typeof ProxyDescription>

export const ProxyReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  proxy: Type.Union([ProxyDescription, Type.Null()], { description: 'null: the company connects directly' })
})
export type ProxyReply = Static<typeof ProxyReply>

export const ProxyCheckReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  proxy: Type.Union([ProxyDescription, Type.Null()]),
  endpoint: Type.String({ description: 'What was reached: WhatsApp\'s WebSocket origin (the simulator\'s in the sandbox)' }),
  ok: Type.Boolean(),
  roundTripMs: Type.Optional(Type.Integer({ minimum: 0, description: 'From opening the tunnel to the endpoint\'s first answer' })),
  failure: Type.Optional(Type.Union([
    Type.Literal('proxy_unreachable'), Type.Literal('proxy_auth_failed'), Type.Literal('endpoint_unreachable')
  ])),
  message: Type.Optional(Type.String())
})
export type ProxyCheckReply = Static<typeof ProxyCheckReply>
