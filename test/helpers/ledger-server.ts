import type { NatsConnection } from '@nats-io/nats-core'
import { ConnectionLedger } from '../../plugins/ownership/test-transport.ts'

interface LedgerRequest { op: 'open' | 'close', companyId: string, replica: string, connection: string, reason?: string }

/** Serves one ConnectionLedger on a NATS subject, for replicas running in other processes. */
export function serveLedger (nc: NatsConnection, subject: string): { ledger: ConnectionLedger, stop: () => void } {
  const ledger = new ConnectionLedger()
  const subscription = nc.subscribe(subject, {
    callback: (_err, msg) => {
      const request = msg.json<LedgerRequest>()
      if (request.op === 'open') msg.respond(JSON.stringify({ ok: ledger.open(request.companyId, request.replica, request.connection) }))
      else {
        ledger.close(request.companyId, request.connection, request.reason ?? 'closed')
        msg.respond(JSON.stringify({ ok: true }))
      }
    }
  })
  return { ledger, stop: () => subscription.unsubscribe() }
}
