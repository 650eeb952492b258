import { connect } from '@nats-io/transport-node'
import { headers as natsHeaders } from '@nats-io/nats-core'
import { jetstream } from '@nats-io/jetstream'
import { GatewayHeaders, subjectsFor, type EventEnvelope } from '../../contracts/index.ts'

/**
 * Stores one event as a holder publishes it (its id as Nats-Msg-Id, its epoch in the envelope and
 * the Wa-Epoch header), over a connection of its own: an old holder's late event, made to order.
 */
export async function publishEvent (
  natsUrl: string, namespace: string, event: Omit<EventEnvelope, 'timestamp' | 'replica'> & { replica?: string }
): Promise<void> {
  const nc = await connect({ servers: natsUrl })
  try {
    const headers = natsHeaders()
    headers.set('Nats-Msg-Id', event.id)
    headers.set(GatewayHeaders.epoch, String(event.epoch))
    await jetstream(nc).publish(subjectsFor(namespace).event(event.companyId, event.type),
      JSON.stringify({ replica: 'test', ...event, timestamp: new Date().toISOString() }), { headers })
  } finally {
    await nc.close()
  }
}
