import type { NatsConnection, MsgHdrs } from '@nats-io/nats-core'
import { headers as createHeaders, errors as natsErrors } from '@nats-io/nats-core'
import { ErrorCode, GatewayClientError, type ErrorReply } from './errors.ts'
import { subjectsFor } from './subjects.ts'
import type { NormalizePhoneReply, NormalizePhoneRequest } from './phone.ts'
import type {
  AutoReactionRules, AutoReactionRulesReply, InitializeReply, InitializeRequest, LogoutReply, ReactionReply, ReactionRequest,
  SendReply, SendRequest, SessionsList, SessionStatus
} from './sessions.ts'
import type { OwnerReply } from './cluster.ts'

export const DEFAULT_CLIENT_TIMEOUT_MS = 5_000
const HOLDER_RETRY_INTERVAL_MS = 50

export interface GatewayClientOptions {
  timeoutMs?: number
  /** The gateway deployment's NATS_NAMESPACE (default `wa`). */
  namespace?: string
  /**
   * How long a command waits for a holder when nobody answers (a handoff between replicas takes
   * tens of milliseconds). Default 0: NOT_CONNECTED at once, as for a company nobody holds.
   */
  holderWaitMs?: number
  /** Called before every request, e.g. to inject `traceparent`. */
  decorateHeaders?: (headers: MsgHdrs) => void
}

/**
 * Maps a failed NATS request to the gateway's error codes: nobody subscribed means nobody holds (or
 * serves) it, which is NOT_CONNECTED; silence past the deadline is TIMEOUT.
 */
/** Whether a NATS request failed because nobody subscribes to the subject (for a command: no replica holds the company). */
export function isNoResponders (err: unknown): boolean {
  const cause = err instanceof natsErrors.RequestError ? err.cause : err
  return cause instanceof natsErrors.NoRespondersError || (err instanceof natsErrors.RequestError && err.isNoResponders())
}

export function toClientError (err: unknown, subject: string, timeoutMs: number): Error {
  const cause = err instanceof natsErrors.RequestError ? err.cause : err
  if (isNoResponders(err)) {
    return new GatewayClientError(ErrorCode.NOT_CONNECTED, `no gateway replica answers ${subject}`, undefined, { noResponders: true })
  }
  if (cause instanceof natsErrors.TimeoutError) {
    return new GatewayClientError(ErrorCode.TIMEOUT, `${subject} did not answer within ${timeoutMs} ms`)
  }
  return err instanceof Error ? err : new Error(String(err))
}

export function isErrorReply (value: unknown): value is ErrorReply {
  return typeof value === 'object' && value !== null && (value as { success?: unknown }).success === false &&
    typeof (value as { error?: unknown }).error === 'object'
}

/** A typed NATS client for the gateway's operations, for other services to import. */
export function createGatewayClient (nc: NatsConnection, options: GatewayClientOptions = {}) {
  const timeout = options.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS
  const subjects = subjectsFor(options.namespace)

  /** A holder command: with `holderWaitMs`, asked again while nobody holds the company. */
  async function command<Reply> (companyId: string, name: string, payload: unknown): Promise<Reply> {
    const deadline = Date.now() + (options.holderWaitMs ?? 0)
    for (;;) {
      try {
        return await call<Reply>(subjects.command(companyId, name), payload)
      } catch (err) {
        const betweenHolders = err instanceof GatewayClientError && err.code === ErrorCode.NOT_CONNECTED && (err.noResponders || err.retryAfter !== undefined)
        if (!betweenHolders || Date.now() + HOLDER_RETRY_INTERVAL_MS > deadline) throw err
        await new Promise((resolve) => setTimeout(resolve, HOLDER_RETRY_INTERVAL_MS))
      }
    }
  }

  async function call<Reply> (subject: string, payload: unknown): Promise<Reply> {
    let headers: MsgHdrs | undefined
    if (options.decorateHeaders) {
      headers = createHeaders()
      options.decorateHeaders(headers)
    }
    let reply
    try {
      // No headers unless there are some: an empty set still costs encoding on both ends.
      reply = await nc.request(subject, JSON.stringify(payload), { timeout, headers: headers && headers.keys().length > 0 ? headers : undefined })
    } catch (err) {
      throw toClientError(err, subject, timeout)
    }
    const body: unknown = reply.json()
    if (isErrorReply(body)) {
      throw new GatewayClientError(body.error.code, body.error.message, body.error.details, { retryAfter: body.error.retryAfter, accepted: body.error.accepted })
    }
    return body as Reply
  }

  return {
    normalizePhone: (phone: string, country?: string) =>
      call<NormalizePhoneReply>(subjects.phoneNormalize, { phone, country } satisfies NormalizePhoneRequest),
    /** Sends through the replica holding the company; NOT_CONNECTED at once when none does. */
    send: (companyId: string, request: SendRequest) => command<SendReply>(companyId, 'send', request),
    /** Reacts to a message through the holder; `emoji: ''` removes the reaction. */
    react: (companyId: string, request: ReactionRequest) => command<ReactionReply>(companyId, 'react', request),
    autoReactionRules: (companyId: string) => call<AutoReactionRulesReply>(subjects.autoReactionRules(companyId, 'get'), {}),
    setAutoReactionRules: (companyId: string, rules: AutoReactionRules) => call<AutoReactionRulesReply>(subjects.autoReactionRules(companyId, 'set'), rules),
    status: (companyId: string) => command<SessionStatus>(companyId, 'status', {}),
    logout: (companyId: string) => command<LogoutReply>(companyId, 'logout', {}),
    owner: (companyId: string) => command<OwnerReply>(companyId, 'owner', {}),
    /** Any replica answers: marks the company online and returns its QR, pairing code or connection. */
    initialize: (companyId: string, request: InitializeRequest = {}) => call<InitializeReply>(subjects.initialize(companyId), request),
    listSessions: () => call<SessionsList>(subjects.sessionsList, {})
  }
}

export type GatewayClient = ReturnType<typeof createGatewayClient>
