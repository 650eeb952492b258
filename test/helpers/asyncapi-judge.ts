/**
 * The AsyncAPI document as a judge of what the gateway really sent: which of its messages a NATS
 * message, a WebSocket frame or a webhook delivery is, and whether its headers and payload are what
 * that message's schemas say. Schemas are read through the document's own `$ref`s, as a reader would.
 */
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'

type Json = Record<string, unknown>
interface Channel { address: string | null, messages: Record<string, { $ref: string }> }

/** What Ajv calls the document: its `$ref`s (`#/components/…`) resolve inside it. */
const DOCUMENT_ID = 'asyncapi.json'

export function asyncApiJudge (document: Json, where: { namespace: string }) {
  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats.default(ajv)
  // The document's `id` is AsyncAPI's, a URN; Ajv would take it for JSON Schema's draft-04 `id` and refuse it.
  const { id: _id, ...rest } = document
  ajv.addSchema(rest, DOCUMENT_ID)
  const channels = document.channels as Record<string, Channel>

  /** Problems of `value` by the schema at `pointer` (in JSON Pointer form), none when it matches. */
  const problems = (pointer: string, value: unknown): string[] => {
    const validate = ajv.getSchema(`${DOCUMENT_ID}#${pointer}`)
    if (!validate) return [`the document has no schema at ${pointer}`]
    if (validate(value)) return []
    return (validate.errors ?? []).map((error) =>
      `${pointer}: ${error.instancePath || '/'} ${error.message} ${JSON.stringify(error.params)}`)
  }
  /** The message component a channel's message stands for, as a pointer (`/components/messages/…`). */
  const messageOf = (channel: Channel | undefined, key: string) => channel?.messages[key]?.$ref.replace(/^#/, '')
  const judged = (message: string | undefined, what: string, parts: { headers?: unknown, payload: unknown }) => {
    if (!message) return [`the document has no message for ${what}`]
    return [
      ...(parts.headers === undefined ? [] : problems(`${message}/headers`, parts.headers)),
      ...problems(`${message}/payload`, parts.payload)
    ]
  }

  return {
    /** An event as a NATS subscriber got it: the channel is the one whose address its subject is, for the company it names. */
    nats (subject: string, headers: Record<string, string>, payload: Json): string[] {
      const companyId = subject.split('.')[2]
      const channel = Object.values(channels).find((candidate) =>
        candidate.address?.replace('{namespace}', where.namespace).replace('{companyId}', companyId) === subject)
      const [key] = Object.keys(channel?.messages ?? {})
      return [
        ...(payload.companyId === companyId ? [] : [`${subject} carries an event of ${String(payload.companyId)}`]),
        ...judged(messageOf(channel, key), subject, { headers, payload })
      ]
    },
    /** A frame of the events WebSocket: `subscribed`, a stream error (no event id), or an event by its type. */
    socket (frame: Json): string[] {
      const streamError = frame.type === 'error' && frame.id === undefined
      const key = frame.type === 'subscribed' ? 'subscribed' : streamError ? 'streamError' : String(frame.type)
      return judged(messageOf(channels.eventsSocket, key), `the socket frame ${key}`, { payload: frame })
    },
    /** A webhook delivery: its HTTP headers and its body, an event by its type. */
    webhook (headers: Record<string, string>, body: Json): string[] {
      const key = String(body.type)
      return judged(messageOf(channels.webhook, key), `the webhook delivery ${key}`, { headers, payload: body })
    }
  }
}
