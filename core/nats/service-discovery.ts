import { nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core'
import type { FastifyBaseLogger } from 'fastify'
import type { EndpointInfo, EndpointStats, ServiceEndpoints } from './service-endpoints.ts'

/*
 * The gateway as a NATS micro service (NATS ADR-32), written by hand: @nats-io/services exists only as
 * a prerelease built on an older nats-core. Each replica is one instance; it answers PING, INFO and
 * STATS on `$SRV.<VERB>`, `$SRV.<VERB>.<name>` and `$SRV.<VERB>.<name>.<id>`, in the JSON that
 * `nats micro ls|info|stats` and the official clients read. The bus serves the endpoints themselves.
 */

const CONTROL_PREFIX = '$SRV'
const VERBS = ['PING', 'INFO', 'STATS'] as const
type Verb = (typeof VERBS)[number]

const RESPONSE_TYPES = {
  PING: 'io.nats.micro.v1.ping_response',
  INFO: 'io.nats.micro.v1.info_response',
  STATS: 'io.nats.micro.v1.stats_response'
} as const satisfies Record<Verb, string>

/** ADR-32 names: a service's name and id, and an endpoint's name. */
const NAME = /^[A-Za-z0-9_-]+$/
/** The regular expression semver.org suggests, as ADR-32 asks. */
const SEMVER = new RegExp('^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)' +
  '(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?' +
  '(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$')

/**
 * A deployment's service name. Instances of one name are one kind of service (`nats micro stats`
 * adds their counts up), and two deployments sharing a NATS account answer different subjects, so
 * each namespace is a service of its own: `<namespace>-gateway`, which the default `wa` makes `wa-gateway`.
 */
export function serviceNameOf (namespace: string): string {
  return `${namespace}-gateway`
}

export interface ServiceConfig {
  name: string
  version: string
  description: string
  /** Fixed for the instance's life (ADR-32); string values only (ADR-33). */
  metadata: Record<string, string>
}

export interface ServiceIdentity {
  type: string
  name: string
  id: string
  version: string
  metadata: Record<string, string>
}

export interface ServiceInfo extends ServiceIdentity {
  description: string
  endpoints: EndpointInfo[]
}

export interface ServiceStats extends ServiceIdentity {
  /** When this instance started (ISO 8601, UTC). */
  started: string
  endpoints: EndpointStats[]
}

/** The subjects one verb is asked on: every service, every instance of this name, this instance. */
function controlSubjects (verb: Verb, name: string, id: string): string[] {
  return [`${CONTROL_PREFIX}.${verb}`, `${CONTROL_PREFIX}.${verb}.${name}`, `${CONTROL_PREFIX}.${verb}.${name}.${id}`]
}

/** One replica's instance of the service: answers discovery and monitoring requests until stopped. */
export class ServiceDiscovery {
  readonly id = nuid.next()
  #started = ''
  readonly #config: ServiceConfig
  readonly #endpoints: ServiceEndpoints
  readonly #log: FastifyBaseLogger
  readonly #subscriptions: Subscription[] = []
  /** A refused subscription is said once, not for each of the nine subjects. */
  #refusalLogged = false

  constructor (config: ServiceConfig, endpoints: ServiceEndpoints, log: FastifyBaseLogger) {
    if (!NAME.test(config.name)) throw new Error(`service name "${config.name}" is not of [A-Za-z0-9_-]`)
    if (!SEMVER.test(config.version)) throw new Error(`service version "${config.version}" is not a semantic version`)
    this.#config = { ...config, metadata: Object.freeze({ ...config.metadata }) }
    this.#endpoints = endpoints
    this.#log = log
  }

  /** Subscribes to the nine control subjects (without a queue group: every instance answers). */
  start (nc: NatsConnection): void {
    this.#started = new Date().toISOString()
    for (const verb of VERBS) {
      for (const subject of controlSubjects(verb, this.#config.name, this.id)) {
        this.#subscriptions.push(nc.subscribe(subject, { callback: (err, msg) => this.#answer(verb, subject, err, msg) }))
      }
    }
  }

  /** Stops answering: the instance leaves `nats micro ls`. */
  stop (): void {
    for (const subscription of this.#subscriptions.splice(0)) {
      if (!subscription.isClosed()) subscription.unsubscribe()
    }
  }

  /** When this instance started answering (ISO 8601, UTC), as STATS reports it. */
  get started (): string {
    return this.#started
  }

  ping (): ServiceIdentity {
    return this.#identity(RESPONSE_TYPES.PING)
  }

  info (): ServiceInfo {
    return { ...this.#identity(RESPONSE_TYPES.INFO), description: this.#config.description, endpoints: this.#endpoints.info() }
  }

  stats (): ServiceStats {
    return { ...this.#identity(RESPONSE_TYPES.STATS), started: this.#started, endpoints: this.#endpoints.stats() }
  }

  #identity (type: string): ServiceIdentity {
    const { name, version, metadata } = this.#config
    return { type, name, id: this.id, version, metadata }
  }

  // A subscription callback must never throw into the client: a failure is logged and the asker times out.
  #answer (verb: Verb, subject: string, err: Error | null, msg: Msg): void {
    if (err) {
      // Typically a permissions violation: the NATS user may not subscribe to `$SRV.>`.
      if (!this.#refusalLogged) this.#log.warn({ err, subject }, 'NATS service discovery cannot listen: this replica is not discoverable')
      this.#refusalLogged = true
      return
    }
    if (!msg.reply) return
    try {
      const body = verb === 'PING' ? this.ping() : verb === 'INFO' ? this.info() : this.stats()
      msg.respond(JSON.stringify(body))
    } catch (error) {
      this.#log.warn({ err: error, subject }, 'a NATS service discovery request could not be answered')
    }
  }
}
