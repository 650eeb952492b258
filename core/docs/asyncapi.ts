import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import {
  COMPANY_ID_RULE, DEFAULT_NAMESPACE, EVENT_DATA, EVENT_TYPES, EventHeaders, EventsQuery, EventsSocketError, EventsSubscribed,
  LEASE_STATE_EVENTS, LINKING_EVENTS, StreamSequence, WebhookHeaders, eventSchemaOf, type EventType
} from '../../contracts/index.ts'

/**
 * The AsyncAPI 3.0 document of the events: every event type with its payload, on the three ways it
 * leaves the gateway (NATS subjects, the events WebSocket, webhooks). Every schema is a contracts/
 * TypeBox definition, the same ones the publishing code is typed by, so the document cannot drift
 * from what is published (test/asyncapi.test.ts checks real events against it).
 */

export const ASYNCAPI_PATH = '/docs/asyncapi.json'

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string, license: string }

type Json = Record<string, unknown>
/** What the document is to a reader (and to @asyncapi/parser): JSON with its version. */
export type AsyncApiDocument = { asyncapi: string } & Json

const ref = ($ref: string) => ({ $ref })
const schemaRef = (name: string) => ref(`#/components/schemas/${name}`)
/** `message_sent` → `MessageSent`: the stem of an event type's component names (`MessageSentData`, `NatsMessageSent`, …). */
export const componentStemOf = (type: EventType) => type.split('_').map((word) => word[0].toUpperCase() + word.slice(1)).join('')
/** A TypeBox schema as plain JSON: no non-enumerable markers, and nothing shared with contracts/ for a reader to change. */
const plain = <T = Json>(schema: unknown): T => JSON.parse(JSON.stringify(schema)) as T

const TAGS = {
  linking: { name: 'linking', description: 'Lets whoever sees it link the WhatsApp account: only for principals with the `link` scope' },
  leaseState: {
    name: 'lease-state',
    description: 'Says who holds the company or what state its connection is in: one of an older `epoch` than one already seen for' +
      ' the company is stale (NewestEpochs in contracts/epochs.ts)'
  },
  fact: {
    name: 'fact',
    description: 'Never stale by epoch, always delivered. An inbound `message` may come once per lease: dedupe on `data.messageId`,' +
      ' keeping the highest `epoch`'
  }
}

function tagsOf (type: EventType) {
  return [
    ...(LINKING_EVENTS.has(type) ? [TAGS.linking] : []),
    ...(LEASE_STATE_EVENTS.has(type) ? [TAGS.leaseState] : [TAGS.fact])
  ]
}

const DESCRIPTION = `Every event about a company, in one envelope \`{ id, type, companyId, timestamp, replica, epoch, data }\`,
reaches clients three ways:

- **NATS**: \`<namespace>.evt.<companyId>.<type>\`, kept in the JetStream stream EVENTS_STREAM (subscribe to
  \`<namespace>.evt.<companyId>.>\` for all of a company's). Headers: \`Nats-Msg-Id\` (the event id), \`Wa-Epoch\`,
  \`Wa-Replica\`, and \`traceparent\` when traced.
- **WebSocket** \`GET /api/whatsapp/events?companyId=…\` (browsers add \`ticket=\` from \`POST /api/whatsapp/events/ticket\`):
  first \`{ type: "subscribed", companyId, seq }\`, then every event with its stream \`seq\`; reconnect with
  \`since=<last seq>\` to receive what was missed.
- **Webhooks**: each event POSTed to the registered URL, with its \`seq\` and Standard Webhooks headers: \`webhook-id\` (the
  event id), \`webhook-timestamp\`, \`webhook-signature\` (one or more space-separated \`v1,<base64>\`).

\`id\` is stable (a redelivery keeps it): deduplicate by it. **The newest epoch wins**: a holder or state event
(tag \`lease-state\`) of an older \`epoch\` than one already seen for the company is stale; messages (tag \`fact\`) are
never dropped for their epoch. \`qr\` and \`pairing_code\` (tag \`linking\`) reach only principals with the \`link\` scope.`

/** Per event type: its data and envelope schemas, its NATS channel and publish operation, its socket and webhook messages. */
function describeEventType (type: EventType) {
  const name = componentStemOf(type)
  const summary = (EVENT_DATA[type] as { description?: string }).description
  const envelope = plain(eventSchemaOf(type))
  const schemas = {
    [`${name}Data`]: plain(EVENT_DATA[type]),
    [`${name}Event`]: {
      ...envelope,
      description: `The \`${type}\` event`,
      properties: { ...envelope.properties as Json, data: schemaRef(`${name}Data`) }
    }
  }
  const about = { name: type, title: type, summary, contentType: 'application/json', tags: tagsOf(type) }
  const stored = { allOf: [schemaRef(`${name}Event`), schemaRef('StreamSequence')] }
  const messages = {
    [`Nats${name}`]: { ...about, headers: schemaRef('EventHeaders'), payload: schemaRef(`${name}Event`) },
    [`Socket${name}`]: { ...about, payload: stored },
    [`Webhook${name}`]: { ...about, headers: schemaRef('WebhookHeaders'), payload: stored }
  }
  const channel = {
    address: `{namespace}.evt.{companyId}.${type}`,
    title: `${type} on NATS`,
    servers: [ref('#/servers/nats')],
    parameters: { namespace: ref('#/components/parameters/namespace'), companyId: ref('#/components/parameters/companyId') },
    messages: { [type]: ref(`#/components/messages/Nats${name}`) }
  }
  const operation = {
    action: 'send',
    title: `Publish ${type}`,
    summary,
    channel: ref(`#/channels/nats${name}`),
    messages: [ref(`#/channels/nats${name}/messages/${type}`)]
  }
  return { name, schemas, messages, channel, operation }
}

export interface AsyncApiOptions {
  /** NATS_NAMESPACE: the default of the subjects' first token. */
  namespace?: string
}

/** The AsyncAPI 3.0 document, as plain JSON. */
export function asyncApiDocument ({ namespace = DEFAULT_NAMESPACE }: AsyncApiOptions = {}): AsyncApiDocument {
  const described = EVENT_TYPES.map(describeEventType)
  const byType = (prefix: 'Socket' | 'Webhook') => Object.fromEntries(
    EVENT_TYPES.map((type, index) => [type, ref(`#/components/messages/${prefix}${described[index].name}`)]))
  return plain<AsyncApiDocument>({
    asyncapi: '3.0.0',
    id: 'urn:wa-gateway:events',
    info: {
      title: 'wa-gateway events',
      version: PACKAGE.version,
      description: DESCRIPTION,
      license: { name: PACKAGE.license },
      tags: Object.values(TAGS)
    },
    defaultContentType: 'application/json',
    servers: {
      nats: {
        host: '{host}',
        protocol: 'nats',
        title: 'NATS',
        description: 'The NATS the gateway uses (NATS_URL); a tenant in a NATS account of its own sees only its company\'s subjects',
        variables: { host: { default: 'localhost:4222', description: 'NATS_URL\'s host and port' } }
      },
      gateway: {
        host: '{host}',
        protocol: 'ws',
        title: 'The gateway\'s HTTP listener',
        description: 'The gateway itself (HTTP_PORT); `wss` behind TLS',
        variables: { host: { default: 'localhost:3000', description: 'The gateway\'s host and port' } },
        security: [ref('#/components/securitySchemes/apiKey'), ref('#/components/securitySchemes/bearer'),
          ref('#/components/securitySchemes/ticket')]
      },
      webhookReceiver: {
        host: '{host}',
        protocol: 'https',
        title: 'A webhook receiver',
        description: 'Yours: the http(s) URL a webhook was registered with (POST /api/whatsapp/sessions/{companyId}/webhooks)',
        variables: { host: { default: 'crm.example.com', description: 'The registered URL\'s host' } }
      }
    },
    channels: {
      ...Object.fromEntries(described.map(({ name, channel }) => [`nats${name}`, channel])),
      eventsSocket: {
        address: '/api/whatsapp/events',
        title: 'The events WebSocket',
        description: 'One company\'s events (scope `events`). The first message is `subscribed`: every event after its `seq` follows,' +
          ' each with its own `seq`. Reconnect with `since=<last seq>` to receive what was missed. A client that does not read is' +
          ' closed with 1013 (resume with `since`); a revoked key\'s sockets with 1008; a stream failure sends `error`, then 1011.',
        servers: [ref('#/servers/gateway')],
        messages: {
          subscribed: ref('#/components/messages/SocketSubscribed'),
          streamError: ref('#/components/messages/SocketStreamError'),
          ...byType('Socket')
        },
        bindings: { ws: { method: 'GET', query: plain(EventsQuery), bindingVersion: '0.1.0' } }
      },
      webhook: {
        address: null,
        title: 'Webhook deliveries',
        description: 'Each webhook is a durable consumer of the events stream: its events POSTed one at a time in stream order,' +
          ' acknowledged by a 2xx, retried with backoff (the same `webhook-id`) until WEBHOOK_MAX_AGE, then dead-lettered.' +
          ' A holder or state event older by epoch than one the webhook already delivered is skipped.',
        servers: [ref('#/servers/webhookReceiver')],
        messages: byType('Webhook')
      }
    },
    operations: {
      ...Object.fromEntries(described.map(({ name, operation }) => [`publish${name}`, operation])),
      streamEvents: {
        action: 'send',
        title: 'Stream a company\'s events',
        channel: ref('#/channels/eventsSocket'),
        messages: [ref('#/channels/eventsSocket/messages/subscribed'), ref('#/channels/eventsSocket/messages/streamError'),
          ...EVENT_TYPES.map((type) => ref(`#/channels/eventsSocket/messages/${type}`))]
      },
      deliverWebhook: {
        action: 'send',
        title: 'Deliver an event to a webhook',
        channel: ref('#/channels/webhook'),
        bindings: { http: { method: 'POST', bindingVersion: '0.3.0' } }
      }
    },
    components: {
      schemas: {
        ...Object.assign({}, ...described.map(({ schemas }) => schemas)) as Json,
        StreamSequence: plain(StreamSequence),
        EventHeaders: plain(EventHeaders),
        WebhookHeaders: plain(WebhookHeaders),
        EventsSubscribed: plain(EventsSubscribed),
        EventsSocketError: plain(EventsSocketError)
      },
      messages: {
        ...Object.assign({}, ...described.map(({ messages }) => messages)) as Json,
        SocketSubscribed: {
          name: 'subscribed',
          title: 'subscribed',
          summary: 'The socket is live: every event after `seq` follows',
          payload: schemaRef('EventsSubscribed')
        },
        SocketStreamError: {
          name: 'error',
          title: 'stream error',
          summary: 'The events stream could not be followed; the socket closes (1011)',
          payload: schemaRef('EventsSocketError')
        }
      },
      parameters: {
        namespace: {
          description: 'NATS_NAMESPACE: the first token of every subject of the deployment',
          default: namespace,
          examples: [namespace]
        },
        companyId: { description: `The company (${COMPANY_ID_RULE})`, examples: ['acme'] }
      },
      securitySchemes: {
        apiKey: { type: 'httpApiKey', in: 'header', name: 'x-api-key', description: 'An API key (services)' },
        bearer: { type: 'http', scheme: 'bearer', description: 'An API key or a JWT' },
        ticket: {
          type: 'httpApiKey',
          in: 'query',
          name: 'ticket',
          description: 'Browsers: a single-use ticket from POST /api/whatsapp/events/ticket (60 s, one company)'
        }
      }
    }
  })
}

/** Serves the document at ASYNCAPI_PATH, built once for this deployment's namespace (routes of `app` inherit its access). */
export function serveAsyncApi (app: FastifyInstance): void {
  const document = asyncApiDocument({ namespace: app.config.natsNamespace })
  app.get(ASYNCAPI_PATH, { schema: { hide: true } }, async () => document)
}
