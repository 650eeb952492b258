import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import {
  ErrorCode, LogoutReply, NoFieldsRequest, SessionStatus
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { declareHolderCommand } from './holder-command.ts'
import { declareSendCommand } from './send-command.ts'
import { declareChatCommands } from './chat-commands.ts'
import type { SessionPool } from './pool.ts'
import { wipeAuth } from './auth-store.ts'

const HolderInitialize = Type.Object({ restart: Type.Boolean() })
const HolderInitializeReply = Type.Object({ success: Type.Literal(true), snapshot: Type.Unknown() })

/**
 * A logout of a company without a live socket: marked offline first, so no replica connects it
 * again, then its creds and keys are wiped.
 */
export async function forgetCompany (app: FastifyInstance, companyId: string): Promise<void> {
  await app.ownership.setDesired(companyId, 'offline')
  await wipeAuth(app.orm.em.fork(), companyId)
}

export function requireSession (pool: SessionPool, companyId: string) {
  const session = pool.get(companyId)
  if (!session) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} has no session on this replica`)
  return session
}

/** The connection's own commands, answered by the holder (`<namespace>.cmd.<companyId>.<name>`). */
export function declareSessionCommands (app: FastifyInstance, pool: SessionPool): void {
  const { config } = app

  declareSendCommand(app)
  declareChatCommands(app, pool)

  declareHolderCommand(app, {
    name: 'status',
    request: NoFieldsRequest,
    reply: SessionStatus,
    handle: async ({ companyId, lease }) => {
      const status = requireSession(pool, companyId).status()
      return {
        success: true as const,
        companyId,
        connected: status.connected,
        status: status.state,
        reconnectAttempts: status.reconnectAttempts,
        holder: config.replicaId,
        epoch: lease.epoch,
        health: { healthy: status.connected, phoneNumber: status.phoneNumber, lastActivity: status.lastActivity },
        lastError: status.lastError,
        ...await pool.statusParts(companyId)
      }
    }
  })

  declareHolderCommand(app, {
    name: 'logout',
    request: NoFieldsRequest,
    reply: LogoutReply,
    handle: async ({ companyId }) => {
      const session = requireSession(pool, companyId)
      if (session.socket) {
        // The socket closes with 401; the session wipes the auth state and the company goes offline.
        await session.socket.logout()
      } else {
        await pool.disconnect(companyId, session.epoch, 'logout')
        await forgetCompany(app, companyId)
      }
      return { success: true as const, companyId, message: 'logged out; auth state wiped' }
    }
  })

  // Sent by initialize on any replica: the holder shows what it has, restarting when the linking mode changed.
  declareHolderCommand(app, {
    name: 'initialize',
    request: HolderInitialize,
    reply: HolderInitializeReply,
    handle: async ({ companyId, request }) => {
      if (request.restart || ['stopped', 'breaker_open', 'reconnecting'].includes(requireSession(pool, companyId).state)) {
        await pool.restart(companyId)
      }
      return { success: true as const, snapshot: pool.get(companyId)?.snapshot() ?? null }
    }
  })
}
