import { Type } from 'typebox'
import type { HandlerContext } from '../../core/bus.ts'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/** The lease a command runs under: its fencing epoch and when it was acquired. */
export interface CommandLease {
  epoch: number
  since: string
}

export type CommandHandler = (companyId: string, payload: unknown, context: HandlerContext, lease: CommandLease) => Promise<unknown>

/** Commands validate their own payloads; the router only needs JSON. */
export const CommandPayload = Type.Unknown()

/** What a command reaching a holder mid-handoff is told: the next holder answers within moments. */
const HANDOFF_RETRY_AFTER_S = 0.1

/** A held company as the router sees it. */
interface CommandTarget {
  companyId: string
  epoch: number
  value: { since: string }
  ending: boolean
}

/** `<namespace>.cmd.<companyId>.<name>` on the holder: finds the command by its last tokens and runs it under the lease. */
export class CommandRouter {
  readonly #handlers = new Map<string, CommandHandler>()

  register (name: string, handler: CommandHandler): void {
    this.#handlers.set(name, handler)
  }

  async run (held: CommandTarget, payload: unknown, context: HandlerContext): Promise<unknown> {
    const name = context.subject.split('.').slice(3).join('.')
    const handler = this.#handlers.get(name)
    if (!handler) throw new GatewayError(ErrorCode.NOT_FOUND, `unknown command "${name}" (known: ${[...this.#handlers.keys()].join(', ')})`)
    if (held.ending) {
      throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${held.companyId} is being handed off`, {
        retryAfter: HANDOFF_RETRY_AFTER_S
      })
    }
    return handler(held.companyId, payload, context, { epoch: held.epoch, since: held.value.since })
  }
}
