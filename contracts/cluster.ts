import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

export const DesiredState = Type.Union([Type.Literal('online'), Type.Literal('offline')])
export type DesiredState = Static<typeof DesiredState>

export const DesiredChanged = Type.Object({ companyId: CompanyId, desired: DesiredState })
export type DesiredChanged = Static<typeof DesiredChanged>

export const CompanyParams = Type.Object({ companyId: CompanyId })
export type CompanyParams = Static<typeof CompanyParams>

export const OwnerReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  replica: Type.String(),
  epoch: Type.Number(),
  since: Type.String({ description: 'ISO time the lease was acquired' })
})
export type OwnerReply = Static<typeof OwnerReply>

export const ClusterReply = Type.Object({
  success: Type.Literal(true),
  replica: Type.String({ description: 'The replica that answered' }),
  members: Type.Array(Type.Object({
    replica: Type.String(),
    alive: Type.Boolean(),
    startedAt: Type.String(),
    lastSeenMsAgo: Type.Number()
  })),
  companies: Type.Array(Type.Object({
    companyId: CompanyId,
    desired: DesiredState,
    holder: Type.Union([Type.String(), Type.Null()]),
    preferred: Type.Union([Type.String(), Type.Null()]),
    epoch: Type.Union([Type.Number(), Type.Null()]),
    heldForMs: Type.Union([Type.Number(), Type.Null()])
  })),
  changes: Type.Array(Type.Object({
    companyId: CompanyId,
    from: Type.Union([Type.String(), Type.Null()]),
    to: Type.Union([Type.String(), Type.Null()]),
    at: Type.String()
  }), { description: 'Recent changes of holder this replica saw, newest first (up to 50)' })
})
export type ClusterReply = Static<typeof ClusterReply>

/** `<namespace>.evt.<companyId>.owner_changed` data. */
export const OwnerChanged = Type.Object({
  holder: Type.Union([Type.String(), Type.Null()]),
  epoch: Type.Union([Type.Number(), Type.Null()]),
  reason: Type.String({ description: 'acquired | handoff | shutdown | fenced | lost | desired_offline | connect_failed' })
})
export type OwnerChanged = Static<typeof OwnerChanged>
