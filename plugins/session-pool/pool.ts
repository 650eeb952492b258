import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import type { Events } from '../../core/events.ts'
import type { SessionStatus } from '../../contracts/index.ts'
import type { Conversations } from '../conversations/index.ts'
import type { Media } from '../media/index.ts'
import type { ConnectLease, Connector } from '../ownership/index.ts'
import { PostgresAuthStore } from './auth-store.ts'
import type { Sealer } from '../../core/sealing.ts'
import { pendingPairing } from './pairing.ts'
import { historySettingsOf } from './link-settings.ts'
import { Session, type Emit, type StopOutcome } from './session.ts'
import type { SessionPoolOptions } from './settings.ts'
import type { SocketFactory, WaSocket } from './socket-port.ts'
import type { HistorySettings } from './history-port.ts'
import type { ProxyRoute } from '../../core/proxy.ts'

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
  /** The route a company's connections take (its proxy), looked up at each connect; undefined: direct. */
  proxyOf: (companyId: string) => Promise<ProxyRoute | undefined>
  /** A session ended for good (logout, 440, forbidden, …): the company must not be retried. */
  onOutcome: (companyId: string, outcome: StopOutcome) => void
}

/**
 * Told of every socket a session opens, with the session's emit (which publishes nothing once the
 * session stops): how a feature plugin (groups) follows the connection's events of its own area.
 */
/** What other plugins add to a session's status. */
export type StatusParts = Required<Pick<SessionStatus, 'historySync'>>

export type SocketListener = (socket: WaSocket, session: { companyId: string, emit: Emit }) => void

/** A session and the lease it runs under (a restart reopens it under the same one). */
interface Held {
  session: Session
  lease: ConnectLease
}

/** A connection attempt between its start and its session's start; a disconnect or a newer attempt cancels it. */
interface Attempt {
  lease: ConnectLease
  cancelled: boolean
}

/**
 * The sessions this replica holds. It is the ownership connector: a won lease opens a session, a
 * lost or released one stops it. Nothing else creates a session: sending never does.
 *
 * Every attempt belongs to a lease. An attempt that waited (for PostgreSQL, for Baileys to load)
 * opens its socket only if it was not cancelled and its lease is still held under its epoch; a
 * session is never replaced without being stopped first; and a disconnect names the epoch it ends,
 * so a late one never closes a newer lease's session. Otherwise a restart or a connect racing a
 * handoff left a second login of the device that nobody tracked (test/lease-races.test.ts).
 */
export class SessionPool implements Connector {
  readonly #options: PoolOptions
  readonly #held = new Map<string, Held>()
  readonly #attempts = new Map<string, Attempt>()
  /** Sessions being stopped, until their socket is closed: nothing opens, and no lease is given back, before then. */
  readonly #closing = new Map<string, Promise<void>>()

  readonly #socketListeners: SocketListener[] = []
  readonly #statusParts: { [K in keyof StatusParts]?: (companyId: string) => Promise<StatusParts[K]> } = {}

  constructor (options: PoolOptions) {
    this.#options = options
  }

  /** A part of the session's status another plugin keeps (the history sync's state), shown in the holder's answer. */
  addStatusPart<K extends keyof StatusParts> (key: K, part: (companyId: string) => Promise<StatusParts[K]>): void {
    this.#statusParts[key] = part as never
  }

  /** The parts of a company's status other plugins keep; one that fails is left out. */
  async statusParts (companyId: string): Promise<Partial<StatusParts>> {
    const entries = await Promise.all(Object.entries(this.#statusParts).map(async ([key, part]) => {
      const value = await part(companyId).catch((err: unknown) => {
        this.#options.log.warn({ err, companyId, part: key }, 'a part of the session status could not be read')
        return undefined
      })
      return [key, value] as const
    }))
    return Object.fromEntries(entries.filter(([, value]) => value !== undefined))
  }

  /** Listens to every socket sessions open from now on (register before the first session starts). */
  onSocket (listener: SocketListener): void {
    this.#socketListeners.push(listener)
  }

  get closeTimeoutMs (): number {
    return this.#options.settings.waCloseTimeoutMs
  }

  /** What the company's links take of its phone's history: its own choice at initialize, else the deployment's. */
  historySettings (companyId: string): Promise<HistorySettings> {
    return historySettingsOf(this.#options.em(), companyId, this.#options.settings)
  }

  get (companyId: string): Session | undefined {
    return this.#held.get(companyId)?.session
  }

  /** Every session held here. */
  all (): Session[] {
    return [...this.#held.values()].map((held) => held.session)
  }

  get size (): number {
    return this.#held.size
  }

  /** Opens the company's session under `lease`; false when it opened nothing (cancelled, superseded, or the lease ended). */
  async connect (companyId: string, lease: ConnectLease): Promise<boolean> {
    const pending = this.#attempts.get(companyId)
    // An attempt of a newer lease is never cancelled by an older one's (a late restart): the older opens nothing.
    if (pending && pending.lease.epoch > lease.epoch) return false
    if (pending) pending.cancelled = true
    const attempt: Attempt = { lease, cancelled: false }
    this.#attempts.set(companyId, attempt)
    try {
      return await this.#open(companyId, attempt)
    } finally {
      if (this.#attempts.get(companyId) === attempt) this.#attempts.delete(companyId)
    }
  }

  async #open (companyId: string, attempt: Attempt): Promise<boolean> {
    const { lease } = attempt
    const { settings, log, em, events } = this.#options
    const live = () => !attempt.cancelled && lease.isHeld()
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
    const history = await historySettingsOf(em(), companyId, settings)
    const proxy = await this.#options.proxyOf(companyId)
    if (!live()) return false
    // Never two sockets: the session this one replaces, and any close still under way, end first.
    const previous = this.#held.get(companyId)
    await (previous ? this.#stop(companyId, previous) : this.#closing.get(companyId))
    if (!live()) return false
    const session = new Session({
      companyId,
      epoch: lease.epoch,
      auth,
      // Every socket of the session refuses to write once the lease's deadline has passed.
      factory: (options) => factory({ ...options, writableUntil: lease.writableUntil, history, ...(proxy ? { proxy } : {}) }),
      settings,
      log: log.child({ companyId }),
      pairingPhone,
      onSocket: (socket, emit) => { for (const listener of this.#socketListeners) listener(socket, { companyId, emit }) },
      emit: (type, data, options) => { events.publish(companyId, type, data, { epoch: lease.epoch, id: options?.eventId }) },
      saveMedia: (id, source, meta) => this.#options.media.save(id, source, meta),
      contacts: this.#options.contacts,
      onOutcome: (outcome) => {
        if (this.#held.get(companyId)?.session === session) this.#held.delete(companyId)
        this.#options.onOutcome(companyId, outcome)
      }
    })
    this.#held.set(companyId, { session, lease })
    session.start()
    return true
  }

  /**
   * Resolves once no socket of this epoch or an older one is open or closing: a close already under
   * way (a restart's) is waited for too, so the lease is never given back while its socket still closes.
   */
  async disconnect (companyId: string, epoch: number, _reason: string): Promise<void> {
    const attempt = this.#attempts.get(companyId)
    if (attempt && attempt.lease.epoch <= epoch) attempt.cancelled = true
    const held = this.#held.get(companyId)
    await (held && held.session.epoch <= epoch ? this.#stop(companyId, held) : this.#closing.get(companyId))
  }

  /** Stops a session, remembered as closing until its socket is closed (or cut). */
  async #stop (companyId: string, held: Held): Promise<void> {
    if (this.#held.get(companyId) === held) this.#held.delete(companyId)
    const closing = Promise.all([this.#closing.get(companyId), held.session.stop()]).then(() => {})
    this.#closing.set(companyId, closing)
    try {
      await closing
    } finally {
      if (this.#closing.get(companyId) === closing) this.#closing.delete(companyId)
    }
  }

  /** Stops and starts the company's session under the same lease (a new initialize, a pairing request); none opens once it ended. */
  async restart (companyId: string): Promise<void> {
    const held = this.#held.get(companyId)
    if (!held) return
    await this.disconnect(companyId, held.lease.epoch, 'restart')
    if (held.lease.isHeld()) await this.connect(companyId, held.lease)
  }
}
