import type { FastifyInstance, FastifyRequest, FastifySchema, HTTPMethods } from 'fastify'
import { Type, type Static, type TObject, type TSchema } from 'typebox'
import { checkOnFirstUse } from '../../core/lazy-schemas.ts'
import { Value } from 'typebox/value'
import {
  COMMAND_SCOPES, CompanyParams, ErrorCode, ErrorReply, ScheduledReply, type CommandName, type MessageSentDetails, type SchedulableCommand
} from '../../contracts/index.ts'
import type { HandlerContext } from '../../core/bus.ts'
import { assertValid, GatewayError } from '../../core/errors.ts'
import type { CommandLease } from '../ownership/index.ts'

/** NATS header a client may set instead of `idempotencyKey` (the JetStream de-duplication header, reused). */
const NATS_MSG_ID = 'Nats-Msg-Id'
/** HTTP header a client may set instead of `idempotencyKey`; it travels to the holder as the NATS message id. */
const IDEMPOTENCY_HEADER = 'idempotency-key'

/** What a holder command's handler is given. */
export interface HolderCall<Request> {
  companyId: string
  /** The validated payload. */
  request: Request
  /** The lease the holder runs the command under (its fencing epoch goes on every outbound item). */
  lease: CommandLease
  /** The client's idempotency key: the body's `idempotencyKey`, else `Idempotency-Key` (HTTP) or `Nats-Msg-Id` (NATS). */
  idempotencyKey: string | undefined
  /** WhatsApp's id for what the command sends, when its caller chose one (a scheduled message's, see SendOptions). */
  messageId?: string
  /** What the message is sent for, when the gateway sends it on its own: its `message_sent` event says so. */
  sentFor?: Pick<MessageSentDetails, 'scheduled' | 'campaign'>
  /** Absent when the command runs in-process (`HolderCommands.run`). */
  context?: HandlerContext
}

/** Where a schedulable send with `sendAt` goes instead of the holder (the scheduler plugin). */
export type ScheduleSend = (companyId: string, command: SchedulableCommand, request: Record<string, unknown>) => Promise<ScheduledReply>

/** What the in-process runner asks of ownership and the pool. */
export interface Holdings {
  holdsAny: () => boolean
  leaseOf: (companyId: string) => CommandLease | undefined
  isOpen: (companyId: string) => boolean
}

interface Declared {
  /** Validates and prepares a request as the command's route would (a file is fetched and stored). */
  prepare: (companyId: string, payload: unknown) => Promise<unknown>
  /** Runs the handler on a request already validated and prepared. */
  handle: (call: HolderCall<unknown>) => Promise<unknown>
}

/**
 * Every holder command declared, for running one in-process on the holder (the scheduler sends a
 * due message through the same handler a client's request takes), and the scheduler a schedulable
 * send with `sendAt` is handed to. Session-pool knows no scheduler: the scheduler plugs itself in.
 */
export class HolderCommands {
  readonly #declared = new Map<string, Declared>()
  readonly #holdings: Holdings
  #schedule: ScheduleSend | undefined

  constructor (holdings: Holdings) {
    this.#holdings = holdings
  }

  /** Whether this replica holds any company: with none, a loop over work waiting has nothing to ask PostgreSQL. */
  holdsAny (): boolean {
    return this.#holdings.holdsAny()
  }

  /**
   * The lease a company's commands run under when this replica holds it with an open connection.
   * Asked per company of those with work waiting (scheduled messages, campaigns), not of every company
   * held: those loops run several times a second, and a replica holds thousands.
   */
  readyLease (companyId: string): CommandLease | undefined {
    const lease = this.#holdings.leaseOf(companyId)
    return lease && this.#holdings.isOpen(companyId) ? lease : undefined
  }

  /** Whether this replica still holds the company under `epoch` (a handoff ends work begun under an older one). */
  holds (companyId: string, epoch: number): boolean {
    return this.#holdings.leaseOf(companyId)?.epoch === epoch
  }

  add (name: string, declared: Declared): void {
    this.#declared.set(name, declared)
  }

  useScheduler (schedule: ScheduleSend): void {
    this.#schedule = schedule
  }

  /** Hands a send with `sendAt` to the scheduler; a deployment without one refuses it. */
  schedule (companyId: string, command: SchedulableCommand, request: Record<string, unknown>): Promise<ScheduledReply> {
    if (!this.#schedule) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'this gateway schedules nothing (its scheduler plugin is not loaded)', {
        details: [{ field: '/sendAt', message: 'send without it' }]
      })
    }
    return this.#schedule(companyId, command, request)
  }

  /** Validates and prepares a request for a declared command (a send to schedule that came without its route). */
  async prepare (name: string, companyId: string, payload: unknown): Promise<unknown> {
    const declared = this.#declared.get(name)
    if (!declared) throw new Error(`no holder command ${name} is declared`)
    return declared.prepare(companyId, payload)
  }

  /** Runs a declared command here, under `lease` (this replica must hold the company), on a request already prepared. */
  async run<Reply> (name: string, call: Omit<HolderCall<unknown>, 'context'>): Promise<Reply> {
    const declared = this.#declared.get(name)
    if (!declared) throw new Error(`no holder command ${name} is declared`)
    return await declared.handle(call) as Reply
  }
}

/** One operation on a company's WhatsApp connection, declared once for NATS and HTTP. */
export interface HolderCommand<Request extends TSchema, Reply extends TSchema> {
  /** The last token of `<namespace>.cmd.<companyId>.<name>`, answered only by the holder; its scope is `COMMAND_SCOPES[name]`. */
  name: CommandName
  request: Request
  reply: Reply
  /** The HTTP route that forwards to the holder from any replica; its `:companyId` names the company. */
  http?: {
    method: HTTPMethods
    url: `${string}:companyId${string}`
    /** The OpenAPI operationId: the typed client's method for this command. */
    operationId: string
    /**
     * The path's parameters when the URL names more than the company (`:groupId`): each one besides
     * `companyId` is a field of the command's request, taken from the path (and left out of the body).
     */
    params?: TObject
    summary: string
    tags: string[]
    /** Error statuses this command answers besides those its access policy, validation and limits document. */
    errors?: number[]
    /** Also takes `multipart/form-data`: turns the form into the JSON body (before it is validated). */
    multipart?: (request: FastifyRequest, companyId: string) => Promise<unknown>
  }
  /**
   * Work on the validated request before the holder handles it, on the replica that received it
   * (HTTP: before forwarding, so large inputs never cross NATS; NATS: on the holder). It must be
   * idempotent: a forwarded request is prepared again on the holder.
   */
  prepare?: (companyId: string, request: Static<Request>) => Promise<Static<Request>>
  handle: (call: HolderCall<Static<Request>>) => Promise<Static<Reply>>
  /**
   * The command sends a message that may be scheduled: a request with `sendAt` is prepared, then
   * handed to the scheduler (HTTP 202), never to the holder. Its value names the send to the scheduler.
   */
  schedulable?: SchedulableCommand
}

/** Fields that only mean something with `sendAt`. */
const SCHEDULE_ONLY_FIELDS = ['scheduleKey', 'expiresAt', 'quietHours'] as const

/** Whether a schedulable request is for later; one naming schedule fields without `sendAt` is refused, not sent now. */
function isScheduled (request: unknown): request is Record<string, unknown> & { sendAt: string } {
  const fields = request as Record<string, unknown>
  if (typeof fields.sendAt === 'string') return true
  const stray = SCHEDULE_ONLY_FIELDS.find((field) => fields[field] !== undefined)
  if (stray) {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, `${stray} is for scheduled sends: give sendAt too`, {
      details: [{ field: `/${stray}`, message: 'needs sendAt' }]
    })
  }
  return false
}

/** Over HTTP the idempotency key may come as a header; it travels to the holder as the NATS message id. */
export function idempotencyHeaders (request: FastifyRequest): { headers: Record<string, string> } | undefined {
  const key = request.headers[IDEMPOTENCY_HEADER]
  return typeof key === 'string' && key.length > 0 ? { headers: { [NATS_MSG_ID]: key } } : undefined
}

/**
 * Registers a holder command: its NATS subject on the holder (validated, with the company from the
 * subject and the idempotency key from the body or header) and, when declared, its HTTP route on
 * every replica, which forwards the request to whichever replica holds the company.
 */
export function declareHolderCommand<Request extends TSchema, Reply extends TSchema> (
  app: FastifyInstance,
  command: HolderCommand<Request, Reply>
): void {
  const validator = checkOnFirstUse(command.request)
  // Served through the holder's per-company subscription; NATS service discovery lists it once, for every company.
  app.bus.describeEndpoint({ subject: app.subjects.command('*', command.name), request: command.request, reply: command.reply })
  const { schedulable } = command
  const prepared = async (companyId: string, payload: unknown) => {
    const valid = assertValid(validator, payload, 'payload')
    return command.prepare ? await command.prepare(companyId, valid) : valid
  }
  app.holderCommands.add(command.name, {
    prepare: prepared,
    handle: (call) => command.handle(call as HolderCall<Static<Request>>)
  })
  app.ownership.registerCommand(command.name, async (companyId, payload, context, lease) => {
    const request = await prepared(companyId, payload)
    // Over NATS the holder takes a scheduled send like any replica would: it stores it.
    if (schedulable && isScheduled(request)) return app.holderCommands.schedule(companyId, schedulable, request)
    const fromBody = (request as { idempotencyKey?: unknown }).idempotencyKey
    const idempotencyKey = typeof fromBody === 'string' ? fromBody : (context.headers?.get(NATS_MSG_ID) || undefined)
    return command.handle({ companyId, request, lease, idempotencyKey, context })
  })
  if (!command.http) return
  const { method, url, operationId, summary, tags, errors = [], multipart } = command.http
  // The same scope a tenant's NATS account needs for the subject (contracts/operations.ts).
  const scope = COMMAND_SCOPES[command.name]
  const takesBody = method !== 'GET' && method !== 'DELETE'
  const pathFields = Object.keys(command.http.params?.properties ?? {}).filter((field) => field !== 'companyId')
  const body = pathFields.length > 0 ? Type.Omit(command.request as unknown as TObject, pathFields) : command.request
  // Checked by the schemas at run time; generic over Reply, the handler's type cannot be inferred from them.
  const schema: FastifySchema & { operationId: string } = {
    operationId,
    tags,
    summary,
    params: command.http.params ?? CompanyParams,
    ...(takesBody ? { body } : {}),
    response: {
      200: command.reply,
      ...(schedulable ? { 202: ScheduledReply } : {}),
      ...Object.fromEntries(errors.map((status) => [status, ErrorReply]))
    }
  }
  app.route({
    method,
    url,
    config: { access: { scope, company: 'params' } },
    schema,
    ...(multipart
      ? {
          // After access control (onRequest), before validation: the form becomes the JSON body.
          preValidation: async (request: FastifyRequest) => {
            if (request.isMultipart()) request.body = await multipart(request, (request.params as CompanyParams).companyId)
          }
        }
      : {}),
    handler: async (request, reply) => {
      const params = request.params as CompanyParams & Record<string, string>
      const { companyId } = params
      // Only the schema's fields travel to the holder (cleaned in place: the body is not used again).
      const cleaned = {
        ...(takesBody ? Value.Clean(body, request.body) as object : {}),
        ...Object.fromEntries(pathFields.map((field) => [field, params[field]]))
      } as Static<Request>
      const payload = takesBody && command.prepare ? await command.prepare(companyId, cleaned) : cleaned
      // A send for later is stored where it arrives: no holder is needed now, and none is asked.
      if (schedulable && isScheduled(payload)) {
        return reply.code(202).send(await app.holderCommands.schedule(companyId, schedulable, payload))
      }
      return app.ownership.requestHolder(companyId, command.name, payload, idempotencyHeaders(request))
    }
  })
}
