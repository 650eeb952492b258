import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { EntityManager } from '@mikro-orm/postgresql'
import {
  ClusterReply, COMMAND_SCOPES, CompanyParams, DesiredChanged, EmptyRequest, OwnerReply, retryBetweenHolders, type DesiredState
} from '../../contracts/index.ts'
import { notConnectedAnswer } from '../../core/plugins/docs.ts'
import { Ownership } from './ownership.ts'
import type { MemberView } from './membership.ts'
import { inProcessLedger, localLedgerPort, testTransport, type LedgerPort } from './test-transport.ts'
import {
  claimedEpochs, companyCount, desiredStateOf, knownCompanies, saveDesired, OwnershipRecordSchema, migrations as recordMigrations,
  type CompanyPage
} from './records.ts'
import type { Connector } from './connector.ts'
import type { Bus, RequestOptions } from '../../core/bus.ts'
import type { OwnershipOptions } from './settings.ts'
import type { CommandLease } from './command-router.ts'

export type { ConnectLease, Connector } from './connector.ts'
export type { CommandHandler, CommandLease } from './command-router.ts'
export type { MemberView } from './membership.ts'
export type { LedgerPort } from './test-transport.ts'
export { fencedTransaction, type CompanyPage } from './records.ts'
export { settings, type OwnershipOptions } from './settings.ts'

export interface OwnershipService {
  readonly replica: string
  holds: (companyId: string) => boolean
  epochOf: (companyId: string) => number | undefined
  /** The lease this replica holds the company under (what a command runs with); undefined when it holds none. */
  leaseOf: (companyId: string) => CommandLease | undefined
  heldCompanies: () => string[]
  /** Whether this replica holds any company (a loop with nothing to do here skips its query). */
  holdsAny: () => boolean
  /**
   * A command for the company's holder, from any replica. While the company is desired online but
   * between holders (a handoff, a takeover just done) the request is retried for up to
   * HOLDER_WAIT_MS, so a rebalance does not surface to HTTP clients as 503s.
   */
  requestHolder: <Reply>(companyId: string, command: string, payload: unknown, options?: RequestOptions) => Promise<Reply>
  /** Persists the desired state and tells every replica. */
  setDesired: (companyId: string, desired: DesiredState) => Promise<void>
  /** Registers `<namespace>.cmd.<companyId>.<name>`, answered only by the holder. */
  registerCommand: Ownership['registerCommand']
  /** Told when this replica starts holding a company, with how long it had no holder (metrics). */
  onAcquired: Ownership['onAcquired']
  /** Replaces the transport before start (the session pool plugs in its WhatsApp connections). */
  useConnector: (connector: Connector) => void
  readonly stats: Ownership['stats']
  /** Acquisitions running now, and companies waiting for a turn (LEASE_ACQUIRE_CONCURRENCY). */
  acquisitions: Ownership['acquisitions']
  /** With WA_TRANSPORT=test: the ledger that stands for WhatsApp's one-connection rule. */
  readonly testLedger: LedgerPort
  /** The replicas this one sees, alive or recently gone (metrics asks each one). */
  members: () => MemberView[]
  /** Companies desired online or ever held, with their desired state and latest claimed epoch (from PostgreSQL), a page at a time. */
  knownCompanies: (em: EntityManager, page?: CompanyPage) => ReturnType<typeof knownCompanies>
  /** How many companies the deployment knows, and whether one of them is `companyId` (MAX_COMPANIES). */
  companyCount: (em: EntityManager, companyId: string) => ReturnType<typeof companyCount>
}

declare module 'fastify' {
  interface FastifyInstance {
    ownership: OwnershipService
  }
}

/** The multi-process test ledger answers on a NATS subject; reached through the bus like anything else. */
function natsLedgerPort (bus: Bus, subject: string): LedgerPort {
  return {
    open: async (companyId, replica, connection) =>
      (await bus.request<{ ok: boolean }>(subject, { op: 'open', companyId, replica, connection })).ok,
    close: async (companyId, connection, reason) => { await bus.request(subject, { op: 'close', companyId, connection, reason }) }
  }
}

export const entities = [OwnershipRecordSchema]
export const migrations = recordMigrations

export default fp<OwnershipOptions>(async (app, options) => {
  const { config } = app
  const ledger = options.testLedgerSubject ? natsLedgerPort(app.bus, options.testLedgerSubject) : localLedgerPort(inProcessLedger)
  let connector: Connector = testTransport(config.replicaId, ledger)
  let coordinator: Ownership | undefined
  const pendingCommands: Parameters<Ownership['registerCommand']>[] = []
  const pendingAcquired: Parameters<Ownership['onAcquired']>[0][] = []

  const service: OwnershipService = {
    replica: config.replicaId,
    holds: (companyId) => coordinator?.holds(companyId) ?? false,
    epochOf: (companyId) => coordinator?.epochOf(companyId),
    leaseOf: (companyId) => coordinator?.leaseOf(companyId),
    heldCompanies: () => coordinator?.heldCompanies() ?? [],
    holdsAny: () => coordinator?.holdsAny() ?? false,
    requestHolder: <Reply>(companyId: string, command: string, payload: unknown, requestOptions?: RequestOptions): Promise<Reply> =>
      retryBetweenHolders(() => app.bus.request<Reply>(app.subjects.command(companyId, command), payload, requestOptions),
        options.holderWaitMs, () => coordinator?.desires(companyId) ?? false),
    setDesired: async (companyId, desired) => {
      await saveDesired(app.orm.em.fork(), companyId, desired)
      coordinator?.setDesired(companyId, desired === 'online')
      app.bus.publish(app.subjects.desiredChanged, { companyId, desired })
    },
    registerCommand: (name, handler) => {
      if (coordinator) coordinator.registerCommand(name, handler)
      else pendingCommands.push([name, handler])
    },
    onAcquired: (listener) => {
      if (coordinator) coordinator.onAcquired(listener)
      else pendingAcquired.push(listener)
    },
    useConnector: (next) => {
      if (coordinator) throw new Error('useConnector must be called before the app is ready')
      connector = next
    },
    testLedger: ledger,
    get stats () { return coordinator?.stats ?? { acquisitions: 0, losses: 0, fences: 0, handoffs: 0 } },
    members: () => coordinator?.members() ?? [],
    acquisitions: () => coordinator?.acquisitions() ?? { running: 0, waiting: 0 },
    knownCompanies,
    companyCount
  }
  const started = () => {
    if (!coordinator) throw new Error('ownership has not started')
    return coordinator
  }
  app.decorate('ownership', service)

  service.registerCommand('owner', async (companyId, _payload, _context, lease): Promise<OwnerReply> => ({
    success: true, companyId, replica: config.replicaId, epoch: lease.epoch, since: lease.since
  }))
  // Its payload is ignored; listed for NATS service discovery as the other holder commands are (declareHolderCommand).
  app.bus.describeEndpoint({ subject: app.subjects.command('*', 'owner'), request: EmptyRequest, reply: OwnerReply })

  // The event is only a hint to look again: the database this replica uses decides. Another
  // deployment on the same NATS account (or a parallel test) may publish about companies it never had.
  const desiredSubscription = app.bus.handle(app.subjects.desiredChanged, { request: DesiredChanged }, async (change, context) => {
    const desired = await desiredStateOf(context.em, change.companyId)
    coordinator?.setDesired(change.companyId, desired === 'online')
  })

  app.addReadinessCheck('leases', async () => { await started().checkLeases() })

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/cluster', {
    config: { access: { scope: 'admin' } },
    schema: {
      operationId: 'cluster',
      tags: ['cluster'],
      summary: 'Members, the holder and epoch of every company, and how long it has been held, as this replica sees them',
      response: { 200: ClusterReply }
    }
  }, async (request) => {
    const view = started().view()
    // Epochs of companies held elsewhere come from the fencing record each holder claims in PostgreSQL.
    const epochs = await claimedEpochs(request.em)
    const companies = view.companies.map((company) => ({
      ...company,
      epoch: company.epoch ?? (company.holder ? epochs.get(company.companyId) ?? null : null)
    }))
    return { success: true as const, replica: config.replicaId, members: view.members, companies, changes: started().changes() }
  })

  // Any replica answers; the request travels over NATS to the holder, or fails at once with 503 NOT_CONNECTED.
  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/sessions/:companyId/owner', {
    config: { access: { scope: COMMAND_SCOPES.owner, company: 'params' } },
    schema: {
      operationId: 'owner',
      tags: ['cluster'],
      summary: 'Which replica holds the company, under which epoch and since when (asked of the holder itself)',
      params: CompanyParams,
      response: { 200: OwnerReply, 503: notConnectedAnswer }
    }
  }, async (request) => service.requestHolder<OwnerReply>(request.params.companyId, 'owner', {}))

  app.addHook('onReady', async () => {
    coordinator = new Ownership({
      config: options,
      replica: config.replicaId,
      bus: app.bus,
      events: app.events,
      openKv: app.openKv,
      orm: app.orm,
      log: app.log,
      connector,
      subjects: app.subjects
    })
    for (const [name, handler] of pendingCommands) coordinator.registerCommand(name, handler)
    for (const listener of pendingAcquired) coordinator.onAcquired(listener)
    await coordinator.start()
  })
  app.addHook('onClose', async () => {
    await desiredSubscription.close()
    await coordinator?.stop()
  })
}, { name: 'ownership', dependencies: ['config', 'bus', 'db', 'events'] })
