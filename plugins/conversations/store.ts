import type { EntityManager } from '@mikro-orm/core'
import type { DeliveryState, MessageRecord } from '../../contracts/index.ts'
import { runWithParameters } from '../../core/sql.ts'

/** A delivery receipt of an outbound message, and the chat it went to (for a row it has to make). */
export interface Receipt {
  companyId: string
  messageId: string
  state: DeliveryState
  failure: { code: string, message: string } | null
  phone: string | null
  lid: string | null
}

/**
 * Rows in rounds: the k-th round holds each message's k-th row, in their order (one statement may
 * touch a row only once; round by round, a message's rows apply in order, as one by one).
 */
function roundsOf<Row extends { companyId: string, messageId: string }> (rows: Row[]): Row[][] {
  const rounds: Row[][] = []
  const seen = new Map<string, number>()
  for (const row of rows) {
    const key = `${row.companyId}/${row.messageId}`
    const index = seen.get(key) ?? 0
    seen.set(key, index + 1)
    ;(rounds[index] ??= []).push(row)
  }
  return rounds
}

/** Messages of the phone's history as one statement takes them: a column each (JSON columns as JSON text). */
export interface HistoryColumns {
  messageIds: string[]
  directions: ('in' | 'out')[]
  phones: (string | null)[]
  lids: (string | null)[]
  groupIds: (string | null)[]
  kinds: string[]
  texts: (string | null)[]
  details: (string | null)[]
  quotedMessageIds: (string | null)[]
  states: (DeliveryState | null)[]
  sentAtSeconds: number[]
  mediaRefs: (string | null)[]
}

/** A row to add (or, for one already there, to complete: a later event may know the LID or the text). */
export interface NewMessage {
  companyId: string
  messageId: string
  direction: 'in' | 'out'
  phone: string | null
  lid: string | null
  /** A group's message: the group's JID (phone and LID are then the participant's, or null for our own). */
  groupId: string | null
  kind: string
  text: string | null
  details: Record<string, unknown> | null
  quotedMessageId: string | null
  state: DeliveryState | null
  sentAt: Date
  /** The lease epoch it was published under (0: none). */
  epoch: number
  /** Why it failed, when a refusal receipt was folded into it (`foldReceipts`). */
  failure?: { code: string, message: string } | null
}

/**
 * A column of a message written again. Copies of one message from one lease (a redelivery) keep
 * what was written first and fill in only what it lacked. A copy from a newer lease wins where the
 * two differ: after a takeover the old holder's copy may have been published as its socket closed
 * (its file not fetched, its sender's phone not known) or have landed late, and it must not block
 * the new holder's; what the newer copy does not know (null) is kept from the older. A copy from
 * an older lease arriving after a newer one's only fills gaps, like a repeat.
 */
const merged = (column: string) => `case when excluded.epoch > whatsapp_messages.epoch
  then coalesce(excluded.${column}, whatsapp_messages.${column}) else coalesce(whatsapp_messages.${column}, excluded.${column}) end`

/** The SQL rank of a state, so an update only ever moves a message forward (contracts' `advances`). */
const RANK = `case whatsapp_messages.state when 'accepted' then 0 when 'server_ack' then 1 when 'delivered' then 2
  when 'read' then 3 when 'played' then 4 when 'failed' then 5 else -1 end`
/** Whether a receipt of `state` moves a row forward: the SQL of `advance` and of `insert`'s conflict (contracts' `advances`). */
const advancesSql = (state: string) => `${state} is not null and ${RANK} < ${RANK.replace('whatsapp_messages.state', state)}
  and whatsapp_messages.state is distinct from 'failed' and not (${state} = 'failed' and ${RANK} >= 2)`

export type MessageRow = {
  message_id: string,
  direction: 'in' | 'out',
  phone: string | null,
  lid: string | null,
  group_id: string | null,
  kind: string,
  text: string | null,
  details: Record<string, unknown> | null,
  quoted_message_id: string | null,
  state: DeliveryState | null,
  failure: { code: string, message: string } | null,
  edited: boolean,
  deleted: boolean,
  sent_at: Date,
  updated_at: Date
}

export function recordOf (row: MessageRow): MessageRecord {
  return {
    messageId: row.message_id,
    direction: row.direction,
    phone: row.phone,
    lid: row.lid,
    ...(row.group_id ? { groupId: row.group_id } : {}),
    kind: row.kind,
    text: row.deleted ? null : row.text,
    ...(row.details ?? {}),
    quotedMessageId: row.quoted_message_id,
    state: row.state,
    failure: row.failure,
    edited: row.edited,
    deleted: row.deleted,
    timestamp: new Date(row.sent_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString()
  }
}

/** The history's SQL: batched inserts, forward-only states, pages by time. */
export class ConversationStore {
  readonly #em: () => EntityManager

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  async insert (rows: NewMessage[]): Promise<void> {
    for (const round of roundsOf(rows)) {
      // A column per array, sent as parameters: MikroORM's `execute` would write every value into the
      // SQL text, escaping it character by character (most of a live send's history cost in bench:send).
      // A row already there (a redelivery, a receipt that came first, another lease's copy) is merged by `merged`.
      await runWithParameters(this.#em(), `insert into whatsapp_messages
        (company_id, message_id, direction, phone, lid, group_id, kind, text, details, quoted_message_id, state, failure, sent_at, epoch,
          updated_at)
        select company_id, message_id, direction, phone, lid, group_id, kind, text, details::jsonb, quoted_message_id, state,
          failure::jsonb, sent_at, epoch, now()
        from unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::varchar[], $8::text[],
          $9::text[], $10::varchar[], $11::varchar[], $12::text[], $13::timestamptz[], $14::bigint[])
          as incoming (company_id, message_id, direction, phone, lid, group_id, kind, text, details, quoted_message_id, state, failure,
            sent_at, epoch)
        on conflict (company_id, message_id) do update set
          phone = ${merged('phone')},
          lid = ${merged('lid')},
          group_id = ${merged('group_id')},
          text = ${merged('text')},
          details = ${merged('details')},
          kind = case when whatsapp_messages.kind = 'other' or (excluded.epoch > whatsapp_messages.epoch and excluded.kind <> 'other')
            then excluded.kind else whatsapp_messages.kind end,
          quoted_message_id = ${merged('quoted_message_id')},
          epoch = greatest(whatsapp_messages.epoch, excluded.epoch),
          -- A receipt folded into the row (its state past accepted) advances one already there as \`advance\` would.
          state = case when whatsapp_messages.state is not null and ${advancesSql('excluded.state')}
            then excluded.state else whatsapp_messages.state end,
          failure = case when whatsapp_messages.state is not null and ${advancesSql('excluded.state')}
            then excluded.failure else whatsapp_messages.failure end,
          updated_at = now()`, [
        round.map((row) => row.companyId), round.map((row) => row.messageId), round.map((row) => row.direction),
        round.map((row) => row.phone), round.map((row) => row.lid), round.map((row) => row.groupId), round.map((row) => row.kind),
        round.map((row) => row.text), round.map((row) => (row.details === null ? null : JSON.stringify(row.details))),
        round.map((row) => row.quotedMessageId), round.map((row) => row.state),
        round.map((row) => (row.failure ? JSON.stringify(row.failure) : null)), round.map((row) => row.sentAt),
        round.map((row) => row.epoch)
      ])
    }
  }

  /**
   * Messages of the phone's history, in one statement per call: one already stored (received live,
   * or imported before) is left as it is. Returns how many were added.
   */
  async importHistory (companyId: string, columns: HistoryColumns): Promise<number> {
    if (columns.messageIds.length === 0) return 0
    // Column by column, as arrays: no object per row to build, to serialize or for the garbage collector.
    const result = await runWithParameters<{ added: string }>(this.#em(), `with added as (
      insert into whatsapp_messages
        (company_id, message_id, direction, phone, lid, group_id, kind, text, details, quoted_message_id, state, sent_at, epoch, media_ref)
      select $1, message_id, direction, phone, lid, group_id, kind, text, details::jsonb, quoted_message_id, state,
        to_timestamp(sent_at), 0, media_ref::jsonb
      from unnest($2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::varchar[], $8::text[], $9::text[],
        $10::varchar[], $11::varchar[], $12::float8[], $13::text[])
        as incoming (message_id, direction, phone, lid, group_id, kind, text, details, quoted_message_id, state, sent_at, media_ref)
      on conflict (company_id, message_id) do nothing
      returning 1
    ) select count(*) as added from added`, [
      companyId, columns.messageIds, columns.directions, columns.phones, columns.lids, columns.groupIds, columns.kinds, columns.texts,
      columns.details, columns.quotedMessageIds, columns.states, columns.sentAtSeconds, columns.mediaRefs
    ])
    return Number(result[0]?.added ?? 0)
  }

  /** Has PostgreSQL look at the table again (after a large import its plans would assume it small). */
  async analyze (): Promise<void> {
    await this.#em().getConnection().execute('analyze whatsapp_messages', [], 'run')
  }

  /** A history message's file not fetched yet: its stored reference. */
  async mediaRefOf (companyId: string, messageId: string): Promise<unknown> {
    const rows = await this.#em().getConnection().execute<{ media_ref: unknown }[]>(
      'select media_ref from whatsapp_messages where company_id = ? and message_id = ?', [companyId, messageId])
    return rows[0]?.media_ref ?? undefined
  }

  /** The file of a history message, fetched: its description replaces the reference. */
  async fetchedMedia (companyId: string, messageId: string, media: Record<string, unknown>): Promise<void> {
    await this.#em().getConnection().execute(`update whatsapp_messages
      set details = jsonb_set(coalesce(details, '{}'::jsonb), '{media}', ?::jsonb), media_ref = null, updated_at = now()
      where company_id = ? and message_id = ?`, [JSON.stringify(media), companyId, messageId], 'run')
  }

  /**
   * Moves outbound messages' states forward, in the order given; a receipt for a message not
   * recorded yet makes its row. One statement per round: round k takes each message's k-th receipt,
   * so a message's receipts apply in order, as one by one (folding them first would not: `failed`
   * then `read` must leave a delivered message read).
   */
  async advance (receipts: Receipt[]): Promise<void> {
    for (const round of roundsOf(receipts)) {
      // The update and the insert see one snapshot: a row there is advanced (or not) and conflicts with its placeholder.
      await runWithParameters(this.#em(), `with receipt (company_id, message_id, state, failure, phone, lid) as (
          select * from unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::jsonb[], $5::varchar[], $6::varchar[])
        ),
        advanced as (
          update whatsapp_messages set state = receipt.state, failure = receipt.failure, updated_at = now()
          from receipt
          where whatsapp_messages.company_id = receipt.company_id and whatsapp_messages.message_id = receipt.message_id
            and ${advancesSql('receipt.state')}
        )
        insert into whatsapp_messages (company_id, message_id, direction, phone, lid, kind, state, failure, sent_at)
          select company_id, message_id, 'out', phone, lid, 'other', state, failure, now() from receipt
        on conflict do nothing`, [
        round.map((receipt) => receipt.companyId), round.map((receipt) => receipt.messageId), round.map((receipt) => receipt.state),
        round.map((receipt) => (receipt.failure === null ? null : JSON.stringify(receipt.failure))),
        round.map((receipt) => receipt.phone), round.map((receipt) => receipt.lid)
      ])
    }
  }

  /** A placeholder a receipt made for what turned out to be an edit or a deletion (not a message of its own). */
  async forgetPlaceholder (companyId: string, messageId: string): Promise<void> {
    await this.#em().getConnection().execute(
      "delete from whatsapp_messages where company_id = ? and message_id = ? and kind = 'other' and text is null", [companyId, messageId])
  }

  async markEdited (companyId: string, messageId: string, text: string): Promise<void> {
    await this.#em().getConnection().execute(
      'update whatsapp_messages set text = ?, edited = true, updated_at = now() where company_id = ? and message_id = ?',
      [text, companyId, messageId])
  }

  async markDeleted (companyId: string, messageId: string): Promise<void> {
    await this.#em().getConnection().execute(
      'update whatsapp_messages set deleted = true, updated_at = now() where company_id = ? and message_id = ?', [companyId, messageId])
  }

  async get (companyId: string, messageId: string): Promise<MessageRecord | undefined> {
    const rows = await this.#em().getConnection().execute<MessageRow[]>(
      'select * from whatsapp_messages where company_id = ? and message_id = ?', [companyId, messageId])
    return rows[0] ? recordOf(rows[0]) : undefined
  }

  /** A page, newest first, of the company's messages (of one contact: by phone and by LID alike; or of one group). */
  async page (
    companyId: string,
    options: { phone?: string | null, lid?: string | null, groupId?: string, before?: { at: Date, id: string }, limit: number }
  ) {
    const where = ['company_id = ?']
    const params: unknown[] = [companyId]
    if (options.groupId !== undefined) {
      where.push('group_id = ?')
      params.push(options.groupId)
    } else if (options.phone !== undefined || options.lid !== undefined) {
      // One contact, whichever of its names a message was recorded under; what they wrote in groups is the groups'.
      const names = [['phone', options.phone], ['lid', options.lid]].filter(([, value]) => value)
      where.push(names.length > 0 ? `(${names.map(([column]) => `${column} = ?`).join(' or ')})` : 'false', 'group_id is null')
      params.push(...names.map(([, value]) => value))
    }
    if (options.before) {
      where.push('(sent_at, message_id) < (?, ?)')
      params.push(options.before.at, options.before.id)
    }
    params.push(options.limit)
    const rows = await this.#em().getConnection().execute<MessageRow[]>(
      `select * from whatsapp_messages where ${where.join(' and ')} order by sent_at desc, message_id desc limit ?`, params)
    return rows.map(recordOf)
  }

  /** The phones of the company's chats with people (not groups), the most recently active first. */
  async contactPhones (companyId: string, limit: number): Promise<string[]> {
    const rows = await this.#em().getConnection().execute<{ phone: string }[]>(
      `select phone from whatsapp_messages where company_id = ? and phone is not null and group_id is null
        group by phone order by max(sent_at) desc limit ?`, [companyId, limit])
    return rows.map((row: { phone: string }) => row.phone)
  }

  async learnLid (companyId: string, lid: string, phone: string): Promise<void> {
    const connection = this.#em().getConnection()
    await connection.execute(`insert into whatsapp_contacts (company_id, lid, phone, updated_at) values (?, ?, ?, now())
      on conflict (company_id, lid) do update set phone = excluded.phone, updated_at = now()`, [companyId, lid, phone])
    // Messages recorded while only one of the two was known now carry both: one contact, not two.
    await connection.execute(`update whatsapp_messages set phone = coalesce(phone, ?), lid = coalesce(lid, ?)
      where company_id = ? and (lid = ? or phone = ?) and (phone is null or lid is null)`, [phone, lid, companyId, lid, phone])
  }

  /** Many pairs at once (a history chunk's LID map), as learnLid one by one. */
  async learnLids (companyId: string, pairs: { lid: string, phone: string }[]): Promise<void> {
    const unique = [...new Map(pairs.map((pair) => [pair.lid, pair])).values()]
    if (unique.length === 0) return
    const pairsJson = JSON.stringify(unique)
    await runWithParameters(this.#em(), `insert into whatsapp_contacts (company_id, lid, phone, updated_at)
      select $1, lid, phone, now() from json_to_recordset($2::json) as learnt (lid varchar, phone varchar)
      on conflict (company_id, lid) do update set phone = excluded.phone, updated_at = now()`, [companyId, pairsJson])
    await runWithParameters(this.#em(), `update whatsapp_messages set phone = coalesce(whatsapp_messages.phone, learnt.phone),
        lid = coalesce(whatsapp_messages.lid, learnt.lid)
      from json_to_recordset($1::json) as learnt (lid varchar, phone varchar)
      where whatsapp_messages.company_id = $2 and (whatsapp_messages.lid = learnt.lid or whatsapp_messages.phone = learnt.phone)
        and (whatsapp_messages.phone is null or whatsapp_messages.lid is null)`, [pairsJson, companyId])
  }

  async phoneOfLid (companyId: string, lid: string): Promise<string | undefined> {
    const rows = await this.#em().getConnection().execute<{ phone: string }[]>(
      'select phone from whatsapp_contacts where company_id = ? and lid = ?', [companyId, lid])
    return rows[0]?.phone
  }

  async lidOfPhone (companyId: string, phone: string): Promise<string | undefined> {
    const rows = await this.#em().getConnection().execute<{ lid: string }[]>(
      'select lid from whatsapp_contacts where company_id = ? and phone = ? order by updated_at desc limit 1', [companyId, phone])
    return rows[0]?.lid
  }

  /** Chats' names: a contact's name as the phone saved it or as they gave it (push name), a group's subject. */
  async name (companyId: string, names: { chat: string, name: string }[], options: { replace: boolean }): Promise<void> {
    if (names.length === 0) return
    const unique = [...new Map(names.map((entry) => [entry.chat, entry])).values()]
    await this.#em().getConnection().execute(`insert into whatsapp_chat_names (company_id, chat, name)
      select ?, chat, name from json_to_recordset(?::json) as named (chat varchar, name varchar)
      on conflict (company_id, chat) do ${options.replace ? 'update set name = excluded.name, updated_at = now()' : 'nothing'}`,
    [companyId, JSON.stringify(unique.map((entry) => ({ chat: entry.chat, name: entry.name.slice(0, 256) })))], 'run')
  }

  async namesOf (companyId: string, chats: string[]): Promise<Map<string, string>> {
    if (chats.length === 0) return new Map()
    const rows: { chat: string, name: string }[] = await this.#em().getConnection().execute<{ chat: string, name: string }[]>(
      `select chat, name from whatsapp_chat_names where company_id = ?
        and chat in (select json_array_elements_text(?::json))`, [companyId, JSON.stringify(chats)])
    return new Map(rows.map((row) => [row.chat, row.name]))
  }

  async forgetOlderThan (days: number): Promise<number> {
    const result = await this.#em().getConnection().execute(
      'delete from whatsapp_messages where sent_at < now() - (? || \' days\')::interval', [String(days)], 'run')
    return (result as { affectedRows?: number }).affectedRows ?? 0
  }
}
