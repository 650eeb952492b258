/**
 * The gateway's fuzzer: a real replica process (WA_SANDBOX: real Baileys against the simulator)
 * holding a linked company, and inputs generated from the gateway's own schemas (the OpenAPI spec it
 * serves, the contracts' NATS request schemas) plus hostile mutations, sent to every HTTP route,
 * every NATS subject it serves and the events WebSocket. It counts crashes (the process ends),
 * server errors (HTTP 500, NATS INTERNAL_ERROR), unhandled rejections (in the process's output) and
 * whether a normal send still succeeds afterwards. Generation is fast-check's, from one seed.
 */
import fc from 'fast-check'
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { WebSocket } from 'ws'
import {
  AutoReactionRules, EmptyRequest, InitializeRequest, NoFieldsRequest, NormalizePhoneRequest, ReactionRequest, SendRequest, subjectsFor
} from '../../contracts/index.ts'
import { dropNamespace } from '../helpers/namespace-cleanup.ts'
import { uniqueName } from '../helpers/services.ts'
import {
  SANDBOX_ADMIN_HEADERS as auth, linkSandboxCompany, startSandboxReplica, type SandboxReplica as Replica
} from '../helpers/sandbox-process.ts'

type JsonSchema = Record<string, unknown>

/** Limits out of the way of a flood, and a cap on the companies the fuzzer may bring into being. */
const FUZZ_ENV = {
  MAX_COMPANIES: '10',
  INITIALIZE_TIMEOUT_MS: '2000',
  API_RATE_LIMIT_MAX: '10000000',
  MESSAGES_PER_MINUTE: '100000',
  REACTIONS_PER_MINUTE_PER_RECIPIENT: '100000'
}

export interface FuzzOptions {
  inputs: number
  seed: number
  natsUrl: string
  databaseUrl: string
  log?: (line: string) => void
}

export interface FuzzResult {
  seed: number
  inputs: number
  crashes: number
  server_errors: number
  unhandled_rejections: number
  still_sends: boolean
  /** The first few inputs that produced a server error, for replay. */
  examples: string[]
}

/** Strings that have broken gateways: line breaks, NUL, lone surrogates, huge and empty ones, markup, paths, numbers. */
const NASTY_STRINGS = [
  '', ' ', '\n', '\r\n', 'a\nb', '\u0000', 'x\u0000y', '\ud800', '\udfff', 'x'.repeat(100_000), '💥'.repeat(1_000),
  // '${7*7}' is a template-injection probe: the literal text is the point.
  // eslint-disable-next-line no-template-curly-in-string
  '__proto__', 'constructor', '../../etc/passwd', '<script>', '${7*7}', "' or 1=1 --", '-1', '1e309', 'NaN', '@lid', '1\n@x',
  'wa.cmd.*.send', '>', '*', '%00', '\\', '"', '{}', 'null'
]
const NASTY_VALUES: unknown[] = [null, true, false, 0, -1, 1.5, 2 ** 53, -0, [], {}, [[[[]]]], { __proto__: { admin: true } }]

/** An arbitrary for a JSON schema (the subset TypeBox and OpenAPI use here). */
export function arbitraryOf (schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 4) return fc.anything({ maxDepth: 2 })
  if (Array.isArray(schema.anyOf)) return fc.oneof(...(schema.anyOf as JsonSchema[]).map((item) => arbitraryOf(item, depth + 1)))
  if ('const' in schema) return fc.constant(schema.const)
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum)
  switch (schema.type) {
    case 'string': {
      if (typeof schema.pattern === 'string') return fc.stringMatching(new RegExp(schema.pattern))
      const maxLength = Math.min(Number(schema.maxLength ?? 40), 200)
      const plain = fc.string({ minLength: Number(schema.minLength ?? 0), maxLength: Math.max(maxLength, Number(schema.minLength ?? 0)) })
      // Within the schema's length, but with what breaks headers, logs and databases mixed in.
      const spiked = fc.tuple(plain, fc.constantFrom('\n', '\r\n', '\u0000', '\ud800', '\t', '\u2028'), fc.nat())
        .map(([text, spike, at]) => {
          const cut = at % (text.length + 1)
          return (text.slice(0, cut) + spike + text.slice(cut)).slice(0, Math.max(maxLength, 1))
        })
      return fc.oneof(
        { arbitrary: plain, weight: 3 },
        { arbitrary: spiked, weight: 2 },
        { arbitrary: fc.constantFrom(...NASTY_STRINGS), weight: 1 }
      )
    }
    case 'integer': return fc.integer({ min: Number(schema.minimum ?? -1_000), max: Number(schema.maximum ?? 1_000_000) })
    case 'number': return fc.double({ noNaN: true })
    case 'boolean': return fc.boolean()
    case 'array':
      return fc.array(arbitraryOf(schema.items as JsonSchema, depth + 1), { maxLength: Math.min(Number(schema.maxItems ?? 5), 5) })
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, JsonSchema>
      const required = (schema.required ?? []) as string[]
      const record = Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, arbitraryOf(value, depth + 1)]))
      return fc.record(record, { requiredKeys: required.filter((key) => key in properties) })
    }
  }
  return fc.anything({ maxDepth: 2 })
}

/** A valid-looking value with one hostile change: a nasty leaf, a wrong type, a missing or extra key. */
function mutated (base: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  const nasty = fc.oneof(fc.constantFrom(...NASTY_STRINGS), fc.constantFrom(...NASTY_VALUES), fc.string({ unit: 'binary' }))
  return fc.tuple(base, nasty, fc.nat(), fc.constantFrom('leaf', 'drop', 'extra', 'proto', 'whole')).map(([value, bad, pick, how]) => {
    if (how === 'whole' || value === null || typeof value !== 'object') return bad
    const copy = structuredClone(value) as Record<string, unknown>
    const keys = Object.keys(copy)
    const key = keys.length > 0 ? keys[pick % keys.length] : 'x'
    if (how === 'leaf') copy[key] = bad
    else if (how === 'drop') delete copy[key]
    else if (how === 'extra') copy[`extra${pick % 7}`] = bad
    else Object.defineProperty(copy, '__proto__', { value: bad, enumerable: true })
    return copy
  })
}

function inputsOf (schema: JsonSchema | undefined): fc.Arbitrary<unknown> {
  const valid = arbitraryOf(schema)
  return fc.oneof({ arbitrary: valid, weight: 2 }, { arbitrary: mutated(valid), weight: 3 })
}

/** A body as it goes on the wire: JSON mostly, sometimes not JSON at all. */
const wireBody = (value: fc.Arbitrary<unknown>) => fc.oneof(
  { arbitrary: value.map((item) => JSON.stringify(item) ?? 'null'), weight: 8 },
  { arbitrary: fc.constantFrom('{', '{"a":', '\u0000', '[1,2', 'not json', '{"__proto__":{"x":1}}', '\ufeff{}'), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes).toString('latin1')), weight: 1 }
)

interface OpenApiOperation {
  parameters?: { in: string, name: string, required?: boolean, schema: JsonSchema }[]
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> }
}

/** Every HTTP operation the replica documents, with generators for its path, query and body. */
async function httpTargets (replica: Replica, companyId: string) {
  const spec = await (await fetch(`${replica.url}/docs/json`)).json() as { paths: Record<string, Record<string, OpenApiOperation>> }
  type HttpInput = { url: string, body?: string, headers: Record<string, string> }
  const targets: { method: string, path: string, input: fc.Arbitrary<HttpInput> }[] = []
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (path === '/api/whatsapp/events') continue
      const parameters = operation.parameters ?? []
      const pathParams = parameters.filter((parameter) => parameter.in === 'path')
      const queryParams = parameters.filter((parameter) => parameter.in === 'query')
      const bodySchema = operation.requestBody?.content?.['application/json']?.schema
      // The linked company is the usual target, except for its logout (the send afterwards needs it).
      const linked = method === 'delete' ? 'other-company' : companyId
      const pathValues = fc.record(Object.fromEntries(pathParams.map((parameter) => [parameter.name, fc.oneof(
        { arbitrary: fc.constant(linked), weight: 3 },
        { arbitrary: arbitraryOf(parameter.schema).map(String), weight: 2 },
        { arbitrary: fc.constantFrom(...NASTY_STRINGS.filter((item) => item.length < 100)), weight: 1 }
      )])))
      const query = fc.dictionary(fc.constantFrom(...queryParams.map((parameter) => parameter.name), 'since', 'x', 'companyId'),
        fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom(...NASTY_STRINGS.filter((item) => item.length < 100))), { maxKeys: 3 })
      const headers = fc.oneof(
        { arbitrary: fc.constant(auth), weight: 8 },
        { arbitrary: fc.constant({}), weight: 1 },
        {
          arbitrary: fc.record({ 'idempotency-key': fc.string({ maxLength: 300 }), authorization: fc.constant(auth.authorization) }),
          weight: 2
        },
        { arbitrary: fc.record({ authorization: fc.string({ maxLength: 100 }).map((value) => `Bearer ${value}`) }), weight: 1 }
      )
      targets.push({
        method: method.toUpperCase(),
        path,
        input: fc.record({ pathValues, query, headers, body: bodySchema ? wireBody(inputsOf(bodySchema)) : fc.constant(undefined) })
          .map(({ pathValues: values, query: search, headers: given, body }) => {
            let url = path
            for (const [name, value] of Object.entries(values)) url = url.replace(`{${name}}`, encodeURIComponent(value.toWellFormed()))
            const queryString = new URLSearchParams(search as Record<string, string>).toString()
            return {
              url: `${url}${queryString ? `?${queryString}` : ''}`,
              body,
              headers: { ...(given as Record<string, string>), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }
            }
          })
      })
    }
  }
  return targets
}

/** Every NATS subject the gateway serves, with a generator for its payload. */
function natsTargets (namespace: string, companyId: string) {
  const subjects = subjectsFor(namespace)
  const company = fc.oneof(
    { arbitrary: fc.constant(companyId), weight: 3 },
    { arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/), weight: 1 }
  )
  const target = (subject: (id: string) => string, schema: JsonSchema) =>
    company.chain((id) => wireBody(inputsOf(schema)).map((body) => ({ subject: subject(id), body })))
  return [
    target((id) => subjects.command(id, 'send'), SendRequest as unknown as JsonSchema),
    target((id) => subjects.command(id, 'react'), ReactionRequest as unknown as JsonSchema),
    target((id) => subjects.command(id, 'status'), NoFieldsRequest as unknown as JsonSchema),
    target((id) => subjects.command(id, 'owner'), EmptyRequest as unknown as JsonSchema),
    target((id) => subjects.command(id, 'no-such-command'), EmptyRequest as unknown as JsonSchema),
    target((id) => subjects.initialize(id), InitializeRequest as unknown as JsonSchema),
    target((id) => subjects.autoReactionRules(id, 'get'), EmptyRequest as unknown as JsonSchema),
    target((id) => subjects.autoReactionRules(id, 'set'), AutoReactionRules as unknown as JsonSchema),
    target(() => subjects.sessionsList, EmptyRequest as unknown as JsonSchema),
    target(() => subjects.phoneNormalize, NormalizePhoneRequest as unknown as JsonSchema),
    target(() => subjects.desiredChanged, { type: 'object', properties: { companyId: { type: 'string' }, desired: { type: 'string' } } }),
    target(() => subjects.metricsCollect, EmptyRequest as unknown as JsonSchema),
    target(() => subjects.keysRevoked, { type: 'object', properties: { keyId: { type: 'string' } } }),
    target((id) => subjects.event(id, 'qr'), { type: 'object' })
  ]
}

/** Runs the fuzzer; resolves with its counts (the replica is stopped at the end). */
export async function fuzz (options: FuzzOptions): Promise<FuzzResult> {
  const log = options.log ?? (() => {})
  // A namespace of the run's own: replicas of other runs on the same NATS never answer its requests.
  const namespace = uniqueName('fuzz')
  const replica = await startSandboxReplica({ natsUrl: options.natsUrl, databaseUrl: options.databaseUrl, namespace, env: FUZZ_ENV })
  const nc: NatsConnection = await connect({ servers: options.natsUrl }).catch((err: unknown) => {
    replica.child.kill('SIGKILL')
    throw err
  })
  const companyId = 'fuzzco'
  const result: FuzzResult = {
    seed: options.seed, inputs: 0, crashes: 0, server_errors: 0, unhandled_rejections: 0, still_sends: false, examples: []
  }
  const serverError = (what: string) => {
    result.server_errors++
    if (result.examples.length < 5) result.examples.push(what.slice(0, 300))
  }
  try {
    await linkSandboxCompany(replica, companyId)
    log(`replica ${replica.url} holds ${companyId}; seed ${options.seed}`)
    const http = await httpTargets(replica, companyId)
    const nats = natsTargets(namespace, companyId)
    const kinds = fc.oneof(
      {
        arbitrary: fc.oneof(...http.map((target) =>
          target.input.map((input) => ({ kind: 'http' as const, method: target.method, ...input })))),
        weight: 6
      },
      { arbitrary: fc.oneof(...nats).map((input) => ({ kind: 'nats' as const, ...input })), weight: 3 },
      {
        arbitrary: fc.record({
          query: fc.string({ maxLength: 60 }),
          frame: fc.oneof(fc.string({ maxLength: 200 }), fc.uint8Array({ maxLength: 5_000 }))
        })
          .map((input) => ({ kind: 'ws' as const, ...input })),
        weight: 1
      }
    )
    const samples = fc.sample(kinds, { seed: options.seed, numRuns: options.inputs })
    for (const input of samples) {
      if (replica.exited()) break
      result.inputs++
      try {
        if (input.kind === 'http') {
          const response = await fetch(`${replica.url}${input.url}`, {
            method: input.method,
            headers: input.headers,
            ...(input.body !== undefined && input.method !== 'GET' && input.method !== 'HEAD' ? { body: input.body } : {})
          })
          const text = await response.text()
          const described = `${input.method} ${input.url} ${input.body ?? ''}`
          if (response.status >= 500 && /INTERNAL_ERROR/.test(text)) serverError(`${described} → ${text}`)
          if (response.status === 500 && !/INTERNAL_ERROR/.test(text)) serverError(`${described} → 500 ${text}`)
        } else if (input.kind === 'nats') {
          const reply = await nc.request(input.subject, input.body, { timeout: 3_000 }).catch(() => undefined)
          const text = reply ? new TextDecoder().decode(reply.data) : ''
          if (text.includes('INTERNAL_ERROR')) serverError(`${input.subject} ${input.body} → ${text}`)
        } else {
          await new Promise<void>((resolve) => {
            const query = input.query.toWellFormed().replace(/#/g, '%23')
            const socket = new WebSocket(`${replica.url.replace('http', 'ws')}/api/whatsapp/events?${query}`, { headers: auth })
            const done = () => { socket.terminate(); resolve() }
            socket.on('open', () => { socket.send(input.frame); setTimeout(done, 20) })
            socket.on('error', done)
            socket.on('unexpected-response', (_request, response) => {
              if (response.statusCode === 500) serverError(`WS ?${input.query} → 500`)
              done()
            })
          })
        }
      } catch (err) {
        // The client side failed (a refused connection, a reset): it counts only if the replica died.
        if (replica.exited()) break
        log(`client error on input ${result.inputs}: ${(err as Error).message}`)
      }
      if (result.inputs % 1_000 === 0) log(`${result.inputs} inputs, ${result.server_errors} server errors`)
    }
    if (replica.exited()) result.crashes++
    // What the replica logged as errors counts too: a message it could not answer left a client waiting.
    for (const line of replica.errors()) serverError(`replica logged: ${line}`)
    result.unhandled_rejections = replica.unhandled()
    if (!replica.exited()) {
      const sent = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/send`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ phone: '79111111111', message: 'still here' })
      })
      result.still_sends = sent.status === 200
      if (!result.still_sends) log(`the send afterwards answered ${sent.status}: ${await sent.text()}`)
    }
  } finally {
    if (!replica.exited()) {
      replica.child.kill('SIGTERM')
      await new Promise((resolve) => replica.child.once('exit', resolve))
    }
    if (result.crashes > 0) log(`the replica ended:\n${replica.output().slice(-3_000)}`)
    await nc.close()
    // What the replica made on NATS (its events stream, buckets and media store) would outlive the run.
    await dropNamespace(options.natsUrl, namespace)
  }
  return result
}
