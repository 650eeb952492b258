import type { EntityManager } from '@mikro-orm/core'
import type { MessageRecord } from '../../contracts/index.ts'
import { recordOf, type MessageRow } from './store.ts'

/**
 * A message's chat as a JID: the group, else the contact by phone, else by LID (one contact's rows
 * carry both once learnt). The index whatsapp_messages_by_chat is on this very expression.
 */
const CHAT = "coalesce(group_id, phone || '@s.whatsapp.net', lid)"
const columnsOf = (table: string) => CHAT.replaceAll(/(group_id|phone|lid)/g, `${table}.$1`)

/** A chat of the history: its latest message and when the company last wrote in it. */
export interface HistoryChat {
  chat: string
  lastMessage: MessageRecord
  lastOutboundAt: Date | null
}

type ChatRow = MessageRow & { chat: string, last_out: Date | null }
type CountRow = { chat: string, count: string }

/** The history by chat (for the chats plugin's list): latest first, paged by each chat's latest message. */
/**
 * A row a delivery receipt made before its message's own (ConversationStore.advance): stamped when the
 * receipt came, it is no message of the chat's, and must neither be its last one nor bring back a chat
 * deleted before the receipt arrived.
 */
const RECEIPT_PLACEHOLDER = "(direction = 'out' and kind = 'other')"

export class ChatListQueries {
  readonly #em: () => EntityManager

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  /**
   * Chats by their latest message, newest first, after `before` (a latest message's time and id);
   * a chat whose latest message is not after its entry in `hidden` (a chat deleted then) is left out.
   */
  async page (
    companyId: string, options: { limit: number, before?: { at: Date, id: string }, hidden: { chat: string, at: Date }[] }
  ): Promise<HistoryChat[]> {
    const params: unknown[] = [companyId]
    const hidden = options.hidden.length > 0
      ? `hidden (chat, at) as (values ${options.hidden.map(() => '(?::varchar, ?::timestamptz)').join(', ')}),`
      : 'hidden (chat, at) as (select null::varchar, null::timestamptz where false),'
    params.push(...options.hidden.flatMap(({ chat, at }) => [chat, at]))
    params.push(companyId)
    const where = ['not exists (select 1 from hidden where hidden.chat = latest.chat and latest.sent_at <= hidden.at)']
    if (options.before) {
      where.push('(latest.sent_at, latest.message_id) < (?, ?)')
      params.push(options.before.at, options.before.id)
    }
    params.push(options.limit)
    const rows: ChatRow[] = await this.#em().getConnection().execute<ChatRow[]>(`
      with company as (select *, ${CHAT} as chat from whatsapp_messages where company_id = ? and not ${RECEIPT_PLACEHOLDER}),
      ${hidden}
      latest as (select distinct on (chat) * from company where chat is not null order by chat, sent_at desc, message_id desc)
      select latest.*, (select max(sent_at) from whatsapp_messages out
        where out.company_id = ? and out.direction = 'out' and ${columnsOf('out')} = latest.chat) as last_out
      from latest where ${where.join(' and ')}
      order by latest.sent_at desc, latest.message_id desc limit ?`, params)
    return rows.map((row) => ({ chat: row.chat, lastMessage: recordOf(row), lastOutboundAt: row.last_out ? new Date(row.last_out) : null }))
  }

  /** The chat's latest message. */
  async latest (companyId: string, chat: string): Promise<MessageRecord | undefined> {
    const rows: MessageRow[] = await this.#em().getConnection().execute<MessageRow[]>(
      `select * from whatsapp_messages where company_id = ? and ${CHAT} = ? and not ${RECEIPT_PLACEHOLDER}
        order by sent_at desc, message_id desc limit 1`,
      [companyId, chat])
    return rows[0] ? recordOf(rows[0]) : undefined
  }

  /** The chat's oldest message (where a request for older history starts). */
  async oldest (companyId: string, chat: string): Promise<MessageRecord | undefined> {
    const rows: MessageRow[] = await this.#em().getConnection().execute<MessageRow[]>(
      `select * from whatsapp_messages where company_id = ? and ${CHAT} = ? and not ${RECEIPT_PLACEHOLDER}
        order by sent_at asc, message_id asc limit 1`,
      [companyId, chat])
    return rows[0] ? recordOf(rows[0]) : undefined
  }

  /** How many messages each chat received after its time (all of them for null). */
  async receivedAfter (companyId: string, marks: { chat: string, after: Date | null }[]): Promise<Map<string, number>> {
    if (marks.length === 0) return new Map()
    const values = marks.map(() => '(?::varchar, ?::timestamptz)').join(', ')
    const rows: CountRow[] = await this.#em().getConnection().execute<CountRow[]>(`
      with mark (chat, after) as (values ${values})
      select mark.chat, count(message.message_id) as count from mark
      left join whatsapp_messages message on message.company_id = ? and message.direction = 'in'
        and ${columnsOf('message')} = mark.chat and (mark.after is null or message.sent_at > mark.after)
      group by mark.chat`, [...marks.flatMap(({ chat, after }) => [chat, after]), companyId])
    return new Map(rows.map((row) => [row.chat, Number(row.count)]))
  }
}
