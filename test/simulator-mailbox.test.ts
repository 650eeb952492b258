import t from 'tap'
import type { WebSocket } from 'ws'
import type { BinaryNode } from '@whiskeysockets/baileys'
import { Directory, lidOf } from '../simulator/accounts.ts'
import type { Connection } from '../simulator/connections.ts'
import { Mailbox, type InboundMessage } from '../simulator/mailbox.ts'
import { waitFor } from './helpers/wait.ts'

// The mailbox's bookkeeping, stanza by stanza, with the stanzas Baileys sends (messages-recv.js
// handleMessage: a receipt for a message it decrypted, a retry receipt then an error ack for one it
// could not, an ack for what it does not answer with a receipt). Real Baileys against the
// simulator: test/simulator-messages.test.ts.

const SALON = '79001234567'
const CLIENT = '79111111111'
const OTHER = '79222222222'

function setUp () {
  const directory = new Directory()
  directory.account(CLIENT)
  directory.account(OTHER)
  const mailbox = new Mailbox(directory, () => {})
  /** A live connection of the salon's linked device 7, recording what it is sent. */
  const connect = () => {
    const sent: BinaryNode[] = []
    const connection: Connection = {
      socket: { readyState: 1, OPEN: 1 } as unknown as WebSocket,
      send: (node) => sent.push(node),
      device: { user: SALON, device: 7 }
    }
    return { connection, sent, messageIds: () => sent.filter((node) => node.tag === 'message').map((node) => node.attrs.id) }
  }
  let next = 0
  const message = (from = CLIENT, extra: Partial<InboundMessage> = {}): InboundMessage =>
    ({ from, to: SALON, id: `MSG${++next}`, at: 1_700_000_000, content: { conversation: `text ${next}` }, ...extra })
  /** The device logs in again on a new connection: what was kept for it is handed over there. */
  const nextLogin = () => {
    const again = connect()
    mailbox.handOver(again.connection)
    return again
  }
  return { mailbox, connect, message, nextLogin }
}

const receipt = (id: string, to: string, type?: string, more: string[] = []): BinaryNode => ({
  tag: 'receipt',
  attrs: { id, to, ...(type ? { type } : {}) },
  content: more.length > 0 ? [{ tag: 'list', attrs: {}, content: more.map((item) => ({ tag: 'item', attrs: { id: item } })) }] : undefined
})

const offlineCount = async (sent: BinaryNode[]): Promise<string | undefined> => {
  for (let i = 0; i < 50 && !sent.some((node) => node.tag === 'ib'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const ib = sent.find((node) => node.tag === 'ib')
  return Array.isArray(ib?.content) ? ib.content[0].attrs.count : undefined
}

t.test('a message the device sent a delivery receipt for is forgotten; one with no receipt comes again at the next login', async (t) => {
  const { mailbox, connect, message, nextLogin } = setUp()
  const live = connect()
  const delivered = message()
  const unanswered = message()
  await mailbox.sendMessage(live.connection, delivered)
  await mailbox.sendMessage(live.connection, unanswered)
  t.same(live.messageIds(), [delivered.id, unanswered.id], 'both went to the live device')
  // Baileys' receipt for a decrypted message while not marked online: type="inactive", to the chat.
  mailbox.receipted(live.connection, receipt(delivered.id, `${CLIENT}@s.whatsapp.net`, 'inactive'))
  mailbox.closed(live.connection)

  const again = nextLogin()
  t.equal(await offlineCount(again.sent), '1', 'one message kept')
  t.same(again.messageIds(), [unanswered.id], 'only the one without a receipt is handed over again')
  t.equal(again.sent.find((node) => node.tag === 'message')?.attrs.offline, '1', 'marked offline')
})

t.test('delivery (no type), read and batched receipts acknowledge every message they name', async (t) => {
  const { mailbox, connect, message, nextLogin } = setUp()
  const live = connect()
  const plain = message()
  const read = message()
  const batch = [message(), message(), message()]
  const byLid = message(CLIENT, { byLid: true })
  for (const each of [plain, read, ...batch, byLid]) await mailbox.sendMessage(live.connection, each)
  mailbox.receipted(live.connection, receipt(plain.id, `${CLIENT}@s.whatsapp.net`))
  mailbox.receipted(live.connection, receipt(read.id, `${CLIENT}@s.whatsapp.net`, 'read'))
  mailbox.receipted(live.connection, receipt(batch[0].id, `${CLIENT}@s.whatsapp.net`, 'read-self', [batch[1].id, batch[2].id]))
  // A LID-addressed chat: the device answers to the LID JID.
  mailbox.receipted(live.connection, receipt(byLid.id, `${lidOf(CLIENT)}@lid`, 'inactive'))
  mailbox.closed(live.connection)

  const again = nextLogin()
  t.equal(await offlineCount(again.sent), '0', 'nothing kept')
  t.same(again.messageIds(), [], 'nothing handed over again')
})

t.test('a retry receipt (the device could not decrypt) does not forget the message; ' +
  'it comes again after the error ack and at the next login', async (t) => {
  const { mailbox, connect, message, nextLogin } = setUp()
  const live = connect()
  const failed = message()
  await mailbox.sendMessage(live.connection, failed)
  // What Baileys sends when decryption failed: a retry receipt, then an ack with error 500.
  mailbox.receipted(live.connection, {
    tag: 'receipt',
    attrs: { id: failed.id, type: 'retry', to: `${CLIENT}@s.whatsapp.net` },
    content: [{ tag: 'retry', attrs: { count: '1', id: failed.id, t: String(failed.at), v: '1', error: '0' } }]
  })
  const refusal = { id: failed.id, class: 'message', error: '500', to: `${CLIENT}@s.whatsapp.net` }
  mailbox.acknowledged(live.connection, { tag: 'ack', attrs: refusal })
  // Sent again a second after the refusal (REDELIVERY_DELAY_MS), by a timer: waited for, not slept on.
  t.ok(await waitFor(() => live.messageIds().length >= 2, 5_000), 'something sent again')
  t.same(live.messageIds(), [failed.id, failed.id], 'sent again on the same connection after the refusal')
  // A media re-upload request is no acknowledgement either.
  mailbox.receipted(live.connection, receipt(failed.id, `${CLIENT}@s.whatsapp.net`, 'server-error'))
  mailbox.closed(live.connection)

  const again = nextLogin()
  t.equal(await offlineCount(again.sent), '1')
  t.same(again.messageIds(), [failed.id], 'kept for the next login')
})

t.test('a receipt naming another chat, or a message this connection was not sent, forgets nothing', async (t) => {
  const { mailbox, connect, message, nextLogin } = setUp()
  const live = connect()
  const other = connect()
  const mine = message()
  await mailbox.sendMessage(live.connection, mine)
  mailbox.receipted(live.connection, receipt(mine.id, `${OTHER}@s.whatsapp.net`, 'inactive'))
  mailbox.receipted(other.connection, receipt(mine.id, `${CLIENT}@s.whatsapp.net`, 'inactive'))
  mailbox.closed(other.connection)
  mailbox.closed(live.connection)
  const again = nextLogin()
  t.equal(await offlineCount(again.sent), '1')
  t.same(again.messageIds(), [mine.id], 'still kept')
})

t.test('an ack without error still acknowledges a message (Baileys acks what it sends no receipt for)', async (t) => {
  const { mailbox, connect, message, nextLogin } = setUp()
  const live = connect()
  const acked = message()
  await mailbox.sendMessage(live.connection, acked)
  mailbox.acknowledged(live.connection, { tag: 'ack', attrs: { id: acked.id, class: 'message', to: `${CLIENT}@s.whatsapp.net` } })
  mailbox.closed(live.connection)
  const again = nextLogin()
  t.equal(await offlineCount(again.sent), '0')
  t.same(again.messageIds(), [])
})
