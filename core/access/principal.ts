import { LINKING_EVENTS, SCOPES, type Scope } from '../../contracts/index.ts'

/** Who a request acts as: the companies it may act for (`*`: every one) and what it may do. */
export interface Principal {
  /** Stable id: `admin`, `key:<id>`, `jwt:<sub>`; rate limits and revocations key on it. */
  id: string
  kind: 'admin' | 'key' | 'jwt' | 'ticket' | 'local'
  companies: '*' | readonly string[]
  scopes: ReadonlySet<Scope>
  /** The API key's id, for closing its WebSockets when it is revoked. */
  keyId?: string
}

/** `admin` counts only with every company: a token scoped to some companies cannot mint keys for others. */
function isAdmin (principal: Principal): boolean {
  return principal.scopes.has('admin') && principal.companies === '*'
}

export function hasScope (principal: Principal, scope: Scope): boolean {
  return scope === 'admin' ? isAdmin(principal) : principal.scopes.has(scope) || isAdmin(principal)
}

/**
 * Whether an event of this type may reach a subscriber: linking events only with `link`. The one rule
 * for every path that carries events (the WebSocket, webhooks); `mayLink` is `hasScope(principal, 'link')`
 * of the principal that subscribed, remembered with the subscription.
 */
export function mayReceive (type: string, mayLink: boolean): boolean {
  return mayLink || !LINKING_EVENTS.has(type)
}

export function coversCompany (principal: Principal, companyId: string): boolean {
  return principal.companies === '*' || principal.companies.includes(companyId)
}

/** Everything, for every company: the admin key, and AUTH_MODE=off. */
export function allPowerful (id: string, kind: Principal['kind']): Principal {
  return { id, kind, companies: '*', scopes: new Set(SCOPES) }
}
