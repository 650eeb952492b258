/**
 * Tenants in NATS accounts of their own: keeps `tenants.json` and writes `accounts.conf` from it.
 *
 *   node deploy/nats/tenants.ts add <companyId> [--scopes send,read,events,link,rules] [--nkey U…] [--out DIR]
 *   node deploy/nats/tenants.ts remove <companyId>
 *   node deploy/nats/tenants.ts render
 *   node deploy/nats/tenants.ts provision <companyId> --server nats://… --seed FILE [--replicas N]
 *   (each takes --dir DIR: the folder with tenants.json and accounts.conf, deploy/nats by default)
 *
 * The gateway's account (users `gateway` and a trusted `backend`) holds every subject, the events
 * stream, the buckets. It exports each of a tenant's company subjects its scopes allow
 * (contracts/operations.ts) to that tenant's account alone: commands and control operations as
 * services, events as a stream (without `qr` and `pairing_code` unless the tenant has `link`). A tenant's
 * account sees nothing else: another company's subjects, the gateway's stream, consumers and buckets
 * are not in it, so no permission a tenant holds can name them. Its events land in a stream of its own
 * (`provision`), where it makes the consumers it likes.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createUser, fromPublic } from '@nats-io/nkeys'
import { connect, nkeyAuthenticator } from '@nats-io/transport-node'
import { jetstreamManager, type StreamConfig } from '@nats-io/jetstream'
import {
  COMMAND_SCOPES, COMPANY_SCOPES, CONTROL_SCOPES, EVENT_TYPES, LINKING_EVENTS, PHONE_NORMALIZE_SCOPE, isCompanyId, subjectsFor,
  type Scope
} from '../../contracts/index.ts'

export interface Tenant {
  /** The public nkey of the tenant's user (`U…`); its seed stays with the tenant. */
  nkey: string
  scopes: Scope[]
}

export interface TenantsFile {
  namespace: string
  /** The gateway's events stream (EVENTS_STREAM); a tenant's own stream takes the same name. */
  eventsStream: string
  /** The gateway's media bucket (MEDIA_BUCKET), for the trusted backend. */
  mediaBucket: string
  /** JetStream a tenant's account may use for its events. */
  tenantJetStream: { maxFileBytes: number, maxConsumers: number }
  tenants: Record<string, Tenant>
}

export const GATEWAY_ACCOUNT = 'GATEWAY'
export const accountOf = (companyId: string) => `tenant-${companyId}`
const DEFAULTS: Omit<TenantsFile, 'tenants'> = {
  namespace: 'wa',
  eventsStream: 'WA_EVENTS',
  mediaBucket: 'wa_media',
  tenantJetStream: { maxFileBytes: 1024 ** 3, maxConsumers: 64 }
}

/** The subjects a tenant's scopes allow: services it may request, event subjects it receives. */
export function tenantSubjects (namespace: string, companyId: string, scopes: readonly Scope[]) {
  const subjects = subjectsFor(namespace)
  const has = (scope: Scope) => scopes.includes(scope)
  const services = [
    ...Object.entries(COMMAND_SCOPES).filter(([, scope]) => has(scope)).map(([name]) => subjects.command(companyId, name)),
    ...Object.entries(CONTROL_SCOPES).filter(([, scope]) => has(scope)).map(([name]) => `${namespace}.ctl.${companyId}.${name}`),
    ...(has(PHONE_NORMALIZE_SCOPE) ? [subjects.phoneNormalize] : [])
  ]
  const events = !has('events')
    ? []
    : has('link')
      ? [subjects.event(companyId, '>')]
      : EVENT_TYPES.filter((type) => !LINKING_EVENTS.has(type)).map((type) => subjects.event(companyId, type))
  return { services, events }
}

const list = (items: string[], indent: string) => items.map((item) => `${indent}${JSON.stringify(item)}`).join(',\n')
const inline = (items: string[]) => `[${items.map((item) => JSON.stringify(item)).join(', ')}]`

function gatewayUsers ({ namespace: ns, eventsStream: stream, mediaBucket: media }: TenantsFile): string {
  const bucketStream = `OBJ_${media}`
  const backendPublish = [
    `${ns}.cmd.>`, `${ns}.ctl.>`, `${ns}.sys.sessions.list`, `${ns}.phone.normalize`,
    `$JS.API.STREAM.INFO.${stream}`, `$JS.API.CONSUMER.CREATE.${stream}.>`, `$JS.API.CONSUMER.INFO.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`, `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`, `$JS.ACK.${stream}.>`,
    `$O.${media}.>`, '$JS.API.INFO', `$JS.API.STREAM.INFO.${bucketStream}`, `$JS.API.STREAM.MSG.GET.${bucketStream}`,
    `$JS.API.DIRECT.GET.${bucketStream}.>`, `$JS.API.STREAM.PURGE.${bucketStream}`, `$JS.API.CONSUMER.CREATE.${bucketStream}`,
    `$JS.API.CONSUMER.CREATE.${bucketStream}.>`, `$JS.API.CONSUMER.INFO.${bucketStream}.>`, `$JS.API.CONSUMER.DELETE.${bucketStream}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${bucketStream}.>`, `$JS.ACK.${bucketStream}.>`,
    // NATS service discovery (`nats micro ls|info|stats`), answered by the replicas.
    '$SRV.>'
  ]
  return `    users: [
      # The replicas: their namespace, JetStream, the buckets, NATS service discovery ($SRV), and replies
      # to whoever asked them (allow_responses, tenants' requests included). NATS_USER=gateway, NATS_INBOX_PREFIX=_INBOX_gateway.
      {
        user: gateway, password: $NATS_GATEWAY_PASSWORD
        permissions: {
          publish: ${inline([`${ns}.>`, '$JS.API.>', '$KV.>', '$O.>', '$JS.ACK.>', '_INBOX_gateway.>'])}
          subscribe: ${inline([`${ns}.>`, '$SRV.>', '_INBOX_gateway.>'])}
          allow_responses: true
        }
      }
      # A trusted backend (the booking assistant): every company's commands and events, the media
      # bucket and service discovery. It connects with the inbox prefix _INBOX_backend (the typed client's \`inboxPrefix\`).
      {
        user: backend, password: $NATS_BACKEND_PASSWORD
        permissions: {
          publish: [
${list(backendPublish, '            ')}
          ]
          subscribe: ${inline([`${ns}.evt.>`, '_INBOX_backend.>'])}
        }
      }
    ]`
}

function tenantAccount (file: TenantsFile, companyId: string, tenant: Tenant): string {
  const { services, events } = tenantSubjects(file.namespace, companyId, tenant.scopes)
  const usesJetStream = events.length > 0
  const { maxFileBytes, maxConsumers } = file.tenantJetStream
  // One stream (its events), on disk, within limits: a tenant's account cannot grow the servers' store unbounded.
  const limits = `max_mem: 0, max_file: ${maxFileBytes}, max_streams: 1, max_consumers: ${maxConsumers}`
  const jetStream = usesJetStream ? `    jetstream: { ${limits} }\n` : ''
  const imports = [
    ...services.map((subject) => `{ service: { account: ${GATEWAY_ACCOUNT}, subject: ${JSON.stringify(subject)} } }`),
    ...events.map((subject) => `{ stream: { account: ${GATEWAY_ACCOUNT}, subject: ${JSON.stringify(subject)} } }`)
  ]
  // Its own JetStream only: the API and acks reach the tenant's stream, never the gateway's.
  const publish = [...services, ...(usesJetStream ? ['$JS.API.>', '$JS.ACK.>', '$JS.FC.>'] : []), '_INBOX.>']
  const subscribe = [...(usesJetStream ? [subjectsFor(file.namespace).event(companyId, '>')] : []), '_INBOX.>']
  return `  # ${companyId}: ${tenant.scopes.join(', ')}
  ${JSON.stringify(accountOf(companyId))} {
${jetStream}    users: [
      {
        nkey: ${tenant.nkey}
        permissions: {
          publish: [
${list(publish, '            ')}
          ]
          subscribe: ${inline(subscribe)}
        }
      }
    ]
    imports: [
${imports.map((line) => `      ${line}`).join('\n')}
    ]
  }`
}

/** accounts.conf for these tenants. */
export function renderAccounts (file: TenantsFile): string {
  const ids = Object.keys(file.tenants).sort()
  const phoneNormalize = subjectsFor(file.namespace).phoneNormalize
  // A subject is exported once: the lookup every tenant with its scope may use lists them all.
  const normalizers = ids.filter((companyId) => file.tenants[companyId].scopes.includes(PHONE_NORMALIZE_SCOPE)).map(accountOf)
  const exports = [
    ...(normalizers.length > 0 ? [`{ service: ${JSON.stringify(phoneNormalize)}, accounts: ${inline(normalizers)} }`] : []),
    ...ids.flatMap((companyId) => {
      const { services, events } = tenantSubjects(file.namespace, companyId, file.tenants[companyId].scopes)
      const to = `accounts: ${inline([accountOf(companyId)])}`
      return [
        `# ${companyId}`,
        ...services.filter((subject) => subject !== phoneNormalize).map((subject) => `{ service: ${JSON.stringify(subject)}, ${to} }`),
        ...events.map((subject) => `{ stream: ${JSON.stringify(subject)}, ${to} }`)
      ]
    })
  ]
  return `# Written by deploy/nats/tenants.ts from tenants.json: change tenants there (or with the script), not here.
# Check it with: nats-server -c deploy/nats/nats-server.conf -t
accounts {
  ${GATEWAY_ACCOUNT} {
    jetstream: enabled
${gatewayUsers(file)}
    exports: [
${exports.map((line) => `      ${line}`).join('\n')}
    ]
  }
${ids.map((companyId) => tenantAccount(file, companyId, file.tenants[companyId])).join('\n')}
}
`
}

export async function readTenants (dir: string): Promise<TenantsFile> {
  try {
    return { ...DEFAULTS, ...JSON.parse(await readFile(join(dir, 'tenants.json'), 'utf8')) as Partial<TenantsFile> } as TenantsFile
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    return { ...DEFAULTS, tenants: {} }
  }
}

async function save (dir: string, file: TenantsFile): Promise<void> {
  await writeFile(join(dir, 'tenants.json'), JSON.stringify(file, null, 2) + '\n')
  await writeFile(join(dir, 'accounts.conf'), renderAccounts(file))
}

function parseScopes (given: string | undefined): Scope[] {
  const scopes = (given ?? COMPANY_SCOPES.join(',')).split(',').map((scope) => scope.trim()).filter(Boolean)
  const unknown = scopes.filter((scope) => !(COMPANY_SCOPES as readonly string[]).includes(scope))
  if (unknown.length > 0 || scopes.length === 0) throw new Error(`scopes are some of ${COMPANY_SCOPES.join(', ')}; got ${given}`)
  return [...new Set(scopes)] as Scope[]
}

function assertPublicUserKey (nkey: string): string {
  try {
    if (nkey.startsWith('U') && fromPublic(nkey)) return nkey
  } catch {}
  throw new Error(`--nkey takes a user's public nkey (U…), got ${nkey}`)
}

/** Adds (or changes) a tenant; writes its seed under `out` unless the tenant brought its own public key. */
export async function addTenant (dir: string, companyId: string, options: { scopes?: string, nkey?: string, out?: string }) {
  if (!isCompanyId(companyId)) throw new Error(`not a company id: ${companyId}`)
  const file = await readTenants(dir)
  const scopes = parseScopes(options.scopes)
  let seedFile: string | undefined
  let nkey = options.nkey ? assertPublicUserKey(options.nkey) : file.tenants[companyId]?.nkey
  if (!nkey) {
    const user = createUser()
    nkey = user.getPublicKey()
    const out = resolve(options.out ?? '.data/nats-tenants')
    await mkdir(out, { recursive: true, mode: 0o700 })
    seedFile = join(out, `${companyId}.nk`)
    await writeFile(seedFile, new TextDecoder().decode(user.getSeed()) + '\n', { mode: 0o600 })
    await chmod(seedFile, 0o600)
  }
  file.tenants[companyId] = { nkey, scopes }
  await save(dir, file)
  return { account: accountOf(companyId), nkey, scopes, seedFile }
}

export async function removeTenant (dir: string, companyId: string): Promise<boolean> {
  const file = await readTenants(dir)
  if (!file.tenants[companyId]) return false
  delete file.tenants[companyId]
  await save(dir, file)
  return true
}

/** The stream a tenant's events land in, in its own account: what `provision` creates. */
export function tenantStreamConfig (file: TenantsFile, companyId: string, replicas = 1): Partial<StreamConfig> & { name: string } {
  return {
    name: file.eventsStream,
    subjects: [subjectsFor(file.namespace).event(companyId, '>')],
    max_age: 24 * 60 * 60 * 1e9,
    max_bytes: file.tenantJetStream.maxFileBytes,
    // The gateway's message ids travel with its events: a retried publish is stored once here too.
    duplicate_window: 2 * 60 * 1e9,
    num_replicas: replicas
  }
}

/** Creates (or updates) the tenant's events stream, connected as the tenant. */
export async function provisionTenant (dir: string, companyId: string, options: { server: string, seed: string, replicas?: number }) {
  const file = await readTenants(dir)
  if (!file.tenants[companyId]) throw new Error(`no tenant ${companyId} in ${join(dir, 'tenants.json')}`)
  const seed = (await readFile(options.seed, 'utf8')).trim()
  const nc = await connect({ servers: options.server, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) })
  try {
    const jsm = await jetstreamManager(nc)
    const config = tenantStreamConfig(file, companyId, options.replicas)
    const info = await jsm.streams.info(file.eventsStream).catch(() => undefined)
    return info ? await jsm.streams.update(file.eventsStream, config) : await jsm.streams.add(config)
  } finally {
    await nc.close()
  }
}

async function main (argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: 'deploy/nats' },
      scopes: { type: 'string' },
      nkey: { type: 'string' },
      out: { type: 'string' },
      server: { type: 'string' },
      seed: { type: 'string' },
      replicas: { type: 'string' }
    }
  })
  const [command, companyId] = positionals
  const dir = resolve(values.dir)
  if (command === 'render') {
    await save(dir, await readTenants(dir))
    console.log(`wrote ${join(dir, 'accounts.conf')}`)
  } else if (command === 'add' && companyId) {
    const added = await addTenant(dir, companyId, values)
    console.log(`account ${added.account}: ${added.scopes.join(', ')}; user ${added.nkey}`)
    if (added.seedFile) console.log(`seed (give it to the tenant, keep it secret): ${added.seedFile}`)
    console.log('reload the servers: nats-server --signal reload (or restart them)')
  } else if (command === 'remove' && companyId) {
    console.log(await removeTenant(dir, companyId) ? `removed ${companyId}; reload the servers` : `no tenant ${companyId}`)
  } else if (command === 'provision' && companyId && values.server && values.seed) {
    const info = await provisionTenant(dir, companyId, { server: values.server, seed: values.seed, replicas: Number(values.replicas ?? 1) })
    console.log(`stream ${info.config.name} in ${accountOf(companyId)}: ${info.config.subjects.join(', ')}`)
  } else {
    console.error('usage: tenants.ts add <companyId> [--scopes …] [--nkey U…] [--out DIR] | remove <companyId> | render |' +
      ' provision <companyId> --server URL --seed FILE [--replicas N]   (all take --dir DIR)')
    process.exitCode = 2
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exitCode = 1
  })
}
