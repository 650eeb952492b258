import { Type, type Static } from 'typebox'

const Counters = {
  totalSessions: Type.Number({ description: 'Sessions held' }),
  activeConnections: Type.Number({ description: 'Sessions with an open WhatsApp connection' }),
  failedReconnects: Type.Number({ description: 'Sessions that gave up reconnecting (reconnect_failed)' }),
  messagesSent: Type.Number(),
  messagesReceived: Type.Number(),
  qrCodesGenerated: Type.Number(),
  errors: Type.Number(),
  lastError: Type.Union([Type.Object({ message: Type.String(), at: Type.String() }), Type.Null()])
}
const SessionCounts = Type.Object({ total: Type.Number(), connected: Type.Number(), disconnected: Type.Number() })

/** One replica's own figures (what it answers on `<namespace>.sys.metrics.collect`). */
export const ReplicaMetrics = Type.Object({
  replica: Type.String(),
  metrics: Type.Object(Counters),
  sessions: SessionCounts
})
export type ReplicaMetrics = Static<typeof ReplicaMetrics>

/** The old system's `/api/whatsapp/metrics` shape, summed over the replicas that answered. */
export const MetricsReply = Type.Object({
  success: Type.Literal(true),
  metrics: Type.Object(Counters),
  sessions: SessionCounts,
  timestamp: Type.String(),
  /** Each replica's own figures. */
  replicas: Type.Array(ReplicaMetrics),
  /** Members that did not answer in time: the sums leave them out. */
  missing: Type.Array(Type.String()),
  complete: Type.Boolean()
})
export type MetricsReply = Static<typeof MetricsReply>
