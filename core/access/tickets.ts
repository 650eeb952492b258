import type { KV } from '@nats-io/kv'
import type { Scope } from '../../contracts/index.ts'
import type { Principal } from './principal.ts'
import { hashSecret, newTicket } from './secrets.ts'

/** A ticket is valid this long, and only once. */
export const TICKET_TTL_MS = 60_000

interface StoredTicket {
  principal: string
  keyId?: string
  companyId: string
  scopes: Scope[]
  expiresAt: number
}

/** Whether the API key with this id is still valid (not revoked). */
export type KeyCheck = (keyId: string) => Promise<boolean>

/**
 * Single-use WebSocket tickets for browsers, which cannot set headers: kept in a KV bucket (any
 * replica may be the one the browser reaches), bound to one company, and deleted on first use by a
 * compare-and-set, so two uses race and one loses. A ticket taken with an API key is worth no more
 * than that key: redeeming it checks the key again, so a revocation also voids its unused tickets.
 */
export class Tickets {
  readonly #kv: KV
  readonly #keyIsActive: KeyCheck

  constructor (kv: KV, keyIsActive: KeyCheck) {
    this.#kv = kv
    this.#keyIsActive = keyIsActive
  }

  async issue (principal: Principal, companyId: string): Promise<{ ticket: string, expiresAt: string }> {
    const ticket = newTicket()
    const expiresAt = Date.now() + TICKET_TTL_MS
    // A ticket carries what a WebSocket needs: events, and linking events only for those who may link.
    const scopes = [...principal.scopes].filter((scope) => scope === 'events' || scope === 'link' || scope === 'admin')
    const stored: StoredTicket = { principal: principal.id, keyId: principal.keyId, companyId, scopes, expiresAt }
    await this.#kv.create(hashSecret(ticket), JSON.stringify(stored))
    return { ticket, expiresAt: new Date(expiresAt).toISOString() }
  }

  /** The principal a ticket stands for, once; undefined when unknown, used or expired. */
  async redeem (ticket: string): Promise<Principal | undefined> {
    const key = hashSecret(ticket)
    const entry = await this.#kv.get(key)
    if (!entry || entry.operation !== 'PUT') return undefined
    try {
      await this.#kv.delete(key, { previousSeq: entry.revision })
    } catch {
      return undefined
    }
    let stored: StoredTicket
    try {
      stored = entry.json<StoredTicket>()
    } catch {
      return undefined
    }
    if (typeof stored.companyId !== 'string' || !(stored.expiresAt >= Date.now())) return undefined
    // Read from the database, not the key lookups remembered for a second: revoked means refused now.
    if (stored.keyId !== undefined && !await this.#keyIsActive(stored.keyId)) return undefined
    return { id: stored.principal, kind: 'ticket', keyId: stored.keyId, companies: [stored.companyId], scopes: new Set(stored.scopes) }
  }
}
