import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../../core/config.ts'
import type { Connector } from '../ownership/connector.ts'
import { PostgresAuthStore } from './auth-store.ts'
import { pendingPairing } from './pairing.ts'
import { Session, type StopOutcome } from './session.ts'
import type { SocketFactory } from './socket-port.ts'

export interface PoolOptions {
  config: Config
  factory: SocketFactory
  em: () => EntityManager
  log: FastifyBaseLogger
  publish: (companyId: string, epoch: number, type: string, data: Record<string, unknown>, eventId?: string) => void
  /** A session ended for good (logout, 440, forbidden, …): the company must not be retried. */
  onOutcome: (companyId: string, outcome: StopOutcome) => void
}

/**
 * The sessions this replica holds. It is the ownership connector: a won lease opens a session, a
 * lost or released one stops it. Nothing else creates a session: sending never does.
 */
export type SessionEventListener = (companyId: string, type: string, data: Record<string, unknown>) => void

export class SessionPool implements Connector {
  readonly #options: PoolOptions
  readonly #sessions = new Map<string, Session>()
  readonly #listeners: SessionEventListener[] = []

  constructor (options: PoolOptions) {
    this.#options = options
  }

  /** In-process listeners for the events of the sessions held here (other plugins react to inbound messages). */
  onEvent (listener: SessionEventListener): void {
    this.#listeners.push(listener)
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
    const { config, log, em } = this.#options
    const auth = await PostgresAuthStore.open({
      companyId, epoch: lease.epoch, em, log, attempts: config.authWriteAttempts, backoffMs: config.authWriteBackoffMs
    })
    // An abandoned pairing attempt leaves `me` without `account`; logging in with that fails.
    if (auth.creds.me && !auth.paired) auth.resetCreds()
    const pairingPhone = auth.paired ? undefined : await pendingPairing(em(), companyId)
    const session = new Session({
      companyId,
      epoch: lease.epoch,
      auth,
      factory: this.#options.factory,
      config,
      log: log.child({ companyId }),
      pairingPhone,
      emit: (type, data, options) => {
        this.#options.publish(companyId, lease.epoch, type, data, options?.eventId)
        for (const listener of this.#listeners) {
          try {
            listener(companyId, type, data)
          } catch (err) {
            log.error({ err, companyId, type }, 'a session event listener failed')
          }
        }
      },
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
