import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import type { Events } from '../../core/events.ts'
import type { Conversations } from '../conversations/index.ts'
import type { Media } from '../media/index.ts'
import type { Connector } from '../ownership/index.ts'
import { PostgresAuthStore } from './auth-store.ts'
import type { Sealer } from './sealing.ts'
import { pendingPairing } from './pairing.ts'
import { Session, type StopOutcome } from './session.ts'
import type { SessionPoolOptions } from './settings.ts'
import type { SocketFactory } from './socket-port.ts'

export interface PoolOptions {
  settings: SessionPoolOptions
  /** The sockets' factory, loaded when the first session starts. */
  loadFactory: () => Promise<SocketFactory>
  em: () => EntityManager
  log: FastifyBaseLogger
  /** Seals the auth state before it reaches PostgreSQL. */
  sealer: Sealer
  /** Where the sessions' events go: the one event path (core/events.ts). */
  events: Pick<Events, 'publish'>
  /** Where received files go. */
  media: Pick<Media, 'save'>
  /** Who contacts are, by phone and by LID. */
  contacts: Pick<Conversations, 'phoneOfLid' | 'learnLid'>
  /** A session ended for good (logout, 440, forbidden, …): the company must not be retried. */
  onOutcome: (companyId: string, outcome: StopOutcome) => void
}

/**
 * The sessions this replica holds. It is the ownership connector: a won lease opens a session, a
 * lost or released one stops it. Nothing else creates a session: sending never does.
 */
export class SessionPool implements Connector {
  readonly #options: PoolOptions
  readonly #sessions = new Map<string, Session>()

  constructor (options: PoolOptions) {
    this.#options = options
  }

  get (companyId: string): Session | undefined {
    return this.#sessions.get(companyId)
  }

  /** Every session held here. */
  all (): Session[] {
    return [...this.#sessions.values()]
  }

  get size (): number {
    return this.#sessions.size
  }

  async connect (companyId: string, lease: { epoch: number }): Promise<void> {
    const { settings, log, em, events } = this.#options
    const factory = await this.#options.loadFactory()
    const auth = await PostgresAuthStore.open({
      companyId,
      epoch: lease.epoch,
      em,
      log,
      attempts: settings.authWriteAttempts,
      backoffMs: settings.authWriteBackoffMs,
      sealer: this.#options.sealer
    })
    // An abandoned pairing attempt leaves `me` without `account`; logging in with that fails.
    if (auth.creds.me && !auth.paired) auth.resetCreds()
    const pairingPhone = auth.paired ? undefined : await pendingPairing(em(), companyId)
    const session = new Session({
      companyId,
      epoch: lease.epoch,
      auth,
      factory,
      settings,
      log: log.child({ companyId }),
      pairingPhone,
      emit: (type, data, options) => { events.publish(companyId, type, data, { epoch: lease.epoch, id: options?.eventId }) },
      saveMedia: (id, source, meta) => this.#options.media.save(id, source, meta),
      contacts: this.#options.contacts,
      onOutcome: (outcome) => {
        if (this.#sessions.get(companyId) === session) this.#sessions.delete(companyId)
        this.#options.onOutcome(companyId, outcome)
      }
    })
    this.#sessions.set(companyId, session)
    session.start()
  }

  async disconnect (companyId: string): Promise<void> {
    const session = this.#sessions.get(companyId)
    this.#sessions.delete(companyId)
    await session?.stop()
  }

  /** Stops and starts the company's session under the same lease (a new initialize, a pairing request). */
  async restart (companyId: string): Promise<void> {
    const session = this.#sessions.get(companyId)
    if (!session) return
    await this.disconnect(companyId)
    await this.connect(companyId, { epoch: session.epoch })
  }
}
