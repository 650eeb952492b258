import { readFile } from 'node:fs/promises'
import t, { type Test } from 'tap'
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import {
  ANY_REPLICA_QUEUE, COMMAND_SCOPES, NormalizePhoneReply, NormalizePhoneRequest, SendReply, SendRequest, subjectsFor
} from '../contracts/index.ts'
import { serviceNameOf, type ServiceIdentity, type ServiceInfo, type ServiceStats } from '../core/nats/service-discovery.ts'
import type { EndpointStats } from '../core/nats/service-endpoints.ts'
import { clusterSettings, startReplica } from './helpers/cluster.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { uniqueName } from './helpers/services.ts'

const PACKAGE = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string, description: string }

/** Long enough for every instance on the shared server to answer a scatter request. */
const GATHER_MS = 1_000

async function client (t: Test, natsUrl: string): Promise<NatsConnection> {
  const nc = await connect({ servers: natsUrl })
  t.teardown(() => nc.close())
  return nc
}

/** Every answer to a `$SRV` request within GATHER_MS, as nats micro collects them. */
async function gather<Reply> (nc: NatsConnection, subject: string): Promise<Reply[]> {
  const replies: Reply[] = []
  for await (const msg of await nc.requestMany(subject, '', { strategy: 'timer', maxWait: GATHER_MS })) replies.push(msg.json<Reply>())
  return replies
}

async function ask<Reply> (nc: NatsConnection, subject: string, payload: unknown = {}): Promise<Reply> {
  return (await nc.request(subject, JSON.stringify(payload), { timeout: 5_000 })).json<Reply>()
}

const schemaOf = (schema: unknown) => JSON.parse(JSON.stringify(schema)) as unknown
const endpointNamed = <E extends { name: string }>(endpoints: E[], name: string): E => {
  const endpoint = endpoints.find((candidate) => candidate.name === name)
  if (!endpoint) throw new Error(`no endpoint ${name} among ${endpoints.map((candidate) => candidate.name).join(', ')}`)
  return endpoint
}

t.test('$SRV.PING and $SRV.INFO find the replica as a NATS micro service, with every request/reply endpoint and its schemas', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const nc = await client(t, settings.natsUrl)
  const namespace = settings.natsNamespace
  const subjects = subjectsFor(namespace)
  const name = serviceNameOf(namespace)
  t.equal(serviceNameOf('wa'), 'wa-gateway', 'the default deployment is the service wa-gateway')

  // Every service on the shared server answers $SRV.PING; this deployment's name is its own.
  const pings = await gather<ServiceIdentity>(nc, '$SRV.PING')
  const mine = pings.filter((ping) => ping.name === name)
  t.equal(mine.length, 1, 'one instance of this deployment answers $SRV.PING')
  t.same(mine[0], {
    type: 'io.nats.micro.v1.ping_response',
    name,
    id: replica.app.natsService.id,
    version: PACKAGE.version,
    metadata: { namespace, replica: replica.id }
  }, 'its identity: version from package.json, namespace and replica in metadata')
  t.match(mine[0].id, /^[A-Za-z0-9_-]+$/, 'an id that can stand in a control subject')

  const info = await ask<ServiceInfo>(nc, `$SRV.INFO.${name}`)
  t.equal(info.type, 'io.nats.micro.v1.info_response')
  t.equal(info.id, mine[0].id, 'INFO comes from the same instance')
  t.equal(info.description, PACKAGE.description)
  const names = info.endpoints.map((endpoint) => endpoint.name)
  for (const expected of [
    'phone-normalize', 'sys-sessions-list', 'sys-metrics-collect', 'ctl-initialize', 'ctl-auto-reactions-get', 'ctl-auto-reactions-set',
    'ctl-messages-list', 'ctl-messages-get', ...Object.keys(COMMAND_SCOPES).map((command) => `cmd-${command}`)
  ]) t.ok(names.includes(expected), `the endpoint ${expected} is listed`)
  t.equal(new Set(names).size, names.length, 'endpoint names are unique')
  for (const endpoint of info.endpoints) {
    t.match(endpoint.name, /^[A-Za-z0-9_-]+$/, `${endpoint.name}: an ADR-32 endpoint name`)
    t.ok(endpoint.subject.startsWith(`${namespace}.`), `${endpoint.name}: a subject of this deployment`)
    t.ok(typeof JSON.parse(endpoint.metadata.request_schema) === 'object' && typeof JSON.parse(endpoint.metadata.reply_schema) === 'object',
      `${endpoint.name}: request and reply schemas as JSON text (metadata values are strings)`)
  }
  const broadcasts: string[] = [subjects.desiredChanged, subjects.keysRevoked]
  t.same(info.endpoints.filter((endpoint) => broadcasts.includes(endpoint.subject)), [],
    'broadcasts, which nobody answers, are no endpoints')

  const phone = endpointNamed(info.endpoints, 'phone-normalize')
  t.same({ subject: phone.subject, queue_group: phone.queue_group }, { subject: subjects.phoneNormalize, queue_group: ANY_REPLICA_QUEUE },
    'any replica answers phone-normalize: its queue group')
  t.same(JSON.parse(phone.metadata.request_schema), schemaOf(NormalizePhoneRequest), 'the request schema the bus validates with')
  t.same(JSON.parse(phone.metadata.reply_schema), schemaOf(NormalizePhoneReply), 'the reply schema')
  const send = endpointNamed(info.endpoints, 'cmd-send')
  t.same({ subject: send.subject, queue_group: send.queue_group }, { subject: subjects.command('*', 'send'), queue_group: '' },
    'a holder command: every company (wildcard), no queue group (only the holder subscribes)')
  t.same(JSON.parse(send.metadata.request_schema), schemaOf(SendRequest))
  t.same(JSON.parse(send.metadata.reply_schema), schemaOf(SendReply))
  t.equal(endpointNamed(info.endpoints, 'sys-metrics-collect').queue_group, '', 'every replica answers metrics: no queue group')

  const byId = await gather<ServiceInfo>(nc, `$SRV.INFO.${name}.${info.id}`)
  t.same(byId.map((reply) => reply.id), [info.id], '$SRV.INFO.<name>.<id> is answered by that instance')
})

t.test('$SRV.STATS counts requests, errors and processing time per endpoint, a holder command under its wildcard endpoint', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const nc = await client(t, settings.natsUrl)
  const subjects = subjectsFor(settings.natsNamespace)
  const control = `$SRV.STATS.${serviceNameOf(settings.natsNamespace)}.${replica.app.natsService.id}`
  const stats = async () => ask<ServiceStats>(nc, control)

  const before = await stats()
  t.equal(before.type, 'io.nats.micro.v1.stats_response')
  t.equal(before.started, replica.app.natsService.started)
  t.ok(Date.parse(before.started) <= Date.now(), 'started is an ISO date')
  t.same(endpointNamed(before.endpoints, 'phone-normalize'), {
    name: 'phone-normalize',
    subject: subjects.phoneNormalize,
    queue_group: ANY_REPLICA_QUEUE,
    num_requests: 0,
    num_errors: 0,
    last_error: '',
    processing_time: 0,
    average_processing_time: 0
  }, 'nothing counted before the first request')

  t.match(await ask(nc, subjects.phoneNormalize, { phone: '89001234567' }), { success: true }, 'a phone normalized')
  t.match(await ask(nc, subjects.phoneNormalize, { phone: 42 }), { success: false, error: { code: 'VALIDATION_ERROR' } }, 'one refused')
  const phone = endpointNamed((await stats()).endpoints, 'phone-normalize')
  t.equal(phone.num_requests, 2, 'both requests counted')
  t.equal(phone.num_errors, 1, 'the refusal counted as an error')
  t.match(phone.last_error, /^VALIDATION_ERROR: /, 'the last error names its code')
  t.ok(phone.processing_time > 0, 'processing time in nanoseconds')
  t.equal(phone.average_processing_time, Math.trunc(phone.processing_time / 2), 'the average is the total over the requests, truncated')

  // A holder command arrives through the holder's subscription to the company's `cmd.<companyId>.>`.
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  const statusBefore = endpointNamed((await stats()).endpoints, 'cmd-status')
  t.match(await ask(nc, subjects.command(companyId, 'status')), { success: true, connected: true })
  t.match(await ask(nc, subjects.command(companyId, 'status'), { extra: 1 }), { success: false, error: { code: 'VALIDATION_ERROR' } })
  const statusAfter = endpointNamed((await stats()).endpoints, 'cmd-status')
  t.equal(statusAfter.subject, subjects.command('*', 'status'))
  t.equal(statusAfter.num_requests - statusBefore.num_requests, 2, 'both status commands counted under cmd-status')
  t.equal(statusAfter.num_errors - statusBefore.num_errors, 1, 'the refused one as an error')
  t.match(statusAfter.last_error, /^VALIDATION_ERROR: /)

  const commandRequests = (endpoints: EndpointStats[]) => endpoints
    .filter((endpoint) => endpoint.name.startsWith('cmd-'))
    .reduce((sum, endpoint) => sum + endpoint.num_requests, 0)
  const commandsBefore = commandRequests((await stats()).endpoints)
  const unknown = await ask(nc, subjects.command(companyId, 'no-such-command'))
  t.match(unknown, { success: false, error: { code: 'NOT_FOUND' } }, 'an unknown command is refused')
  t.equal(commandRequests((await stats()).endpoints), commandsBefore, 'and counted under no command endpoint: none describes it')
})

t.test('two replicas are two instances of one service: distinct ids, each with its own counts', async (t) => {
  const settings = await clusterSettings(t)
  const first = await startReplica(t, settings)
  const second = await startReplica(t, settings)
  const nc = await client(t, settings.natsUrl)
  const subjects = subjectsFor(settings.natsNamespace)
  const name = serviceNameOf(settings.natsNamespace)

  const pings = await gather<ServiceIdentity>(nc, `$SRV.PING.${name}`)
  t.equal(pings.length, 2, 'both replicas answer $SRV.PING.<name>, and nobody else')
  t.same(new Set(pings.map((ping) => ping.id)), new Set([first.app.natsService.id, second.app.natsService.id]), 'each with its own id')
  t.not(first.app.natsService.id, second.app.natsService.id, 'the ids are distinct')
  t.same(new Set(pings.map((ping) => ping.metadata.replica)), new Set([first.id, second.id]), 'the metadata names each replica')

  const requests = 6
  for (let index = 0; index < requests; index++) await ask(nc, subjects.phoneNormalize, { phone: '89001234567' })
  const stats = await gather<ServiceStats>(nc, `$SRV.STATS.${name}`)
  t.equal(stats.length, 2, 'each instance reports its stats')
  const counted = stats.map((instance) => endpointNamed(instance.endpoints, 'phone-normalize').num_requests)
  t.equal(counted[0] + counted[1], requests, 'one instance answered each request (the queue group): their counts add up to the requests')

  await first.close()
  const left = await gather<ServiceIdentity>(nc, `$SRV.PING.${name}`)
  t.same(left.map((ping) => ping.id), [second.app.natsService.id], 'a closed replica leaves the service')
})
