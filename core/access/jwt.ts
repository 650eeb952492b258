import type { JWTVerifyGetKey } from 'jose'
import { SCOPES, isCompanyId, type Scope } from '../../contracts/index.ts'
import type { Principal } from './principal.ts'

export interface JwtSettings {
  jwksUrl: string | undefined
  secret: string | undefined
  issuer: string | undefined
  audience: string | undefined
}

/**
 * Verifies tokens of the deployment's identity provider with `jose` (JWKS or an HS256 secret):
 * signature, `exp` (required), issuer and audience. The claims `companies` (an array, or `*`) and
 * `scopes` (an array or a space-separated string) make the principal. Undefined when none is configured.
 * `jose` is loaded by the first token: a deployment of API keys alone never loads it.
 */
export function jwtVerifier (settings: JwtSettings): ((token: string) => Promise<Principal>) | undefined {
  if (!settings.jwksUrl && !settings.secret) return undefined
  let loaded: Promise<{ jose: typeof import('jose'), key: JWTVerifyGetKey }> | undefined
  const load = async () => {
    const jose = await import('jose')
    if (settings.jwksUrl) return { jose, key: jose.createRemoteJWKSet(new URL(settings.jwksUrl)) }
    const secret = new TextEncoder().encode(settings.secret)
    return { jose, key: async () => secret }
  }
  const options = {
    requiredClaims: ['exp'],
    ...(settings.issuer ? { issuer: settings.issuer } : {}),
    ...(settings.audience ? { audience: settings.audience } : {}),
    ...(settings.jwksUrl ? {} : { algorithms: ['HS256'] })
  }
  return async (token) => {
    const { jose, key } = await (loaded ??= load())
    const { payload } = await jose.jwtVerify(token, key, options)
    const companies = payload.companies === '*'
      ? '*' as const
      : Array.isArray(payload.companies) ? payload.companies.filter(isCompanyId) : []
    const claimed = Array.isArray(payload.scopes) ? payload.scopes : typeof payload.scopes === 'string' ? payload.scopes.split(' ') : []
    const scopes = new Set(claimed.filter((scope): scope is Scope => (SCOPES as readonly unknown[]).includes(scope)))
    return { id: `jwt:${payload.sub ?? 'anonymous'}`, kind: 'jwt', companies, scopes }
  }
}
