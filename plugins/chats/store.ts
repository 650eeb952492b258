import { defineEntity, p, type EntityManager } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { ChatState } from '../../contracts/index.ts'

/** One chat's state as the company's number shares it between its devices (app-state sync), and its read mark. */
export const ChatStateSchema = defineEntity({
  name: 'ChatState',
  tableName: 'whatsapp_chat_states',
  properties: {
    companyId: p.string().primary(),
    chat: p.string().primary(),
    archived: p.boolean(),
    pinned: p.boolean(),
    mutedUntil: p.datetime().nullable(),
    markedUnread: p.boolean(),
    /** When the chat was last marked read: what came in after it is unread. */
    readAt: p.datetime().nullable(),
    /** When the chat was deleted: its messages up to then are no longer shown in the chat list. */
    clearedAt: p.datetime().nullable(),
    disappearingSeconds: p.integer(),
    updatedAt: p.datetime()
  }
})

export class CreateChatStates extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_chat_states (
      company_id varchar(64) not null,
      chat varchar(96) not null,
      archived boolean not null default false,
      pinned boolean not null default false,
      muted_until timestamptz,
      marked_unread boolean not null default false,
      read_at timestamptz,
      cleared_at timestamptz,
      disappearing_seconds integer not null default 0,
      updated_at timestamptz not null default now(),
      primary key (company_id, chat)
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_chat_states')
  }
}

export const chatMigrations = [{ name: 'chats_001_chat_states', class: CreateChatStates }]

/** A change to a chat's stored state: what the gateway changed, or what another device did. */
export interface StateChange {
  archived?: boolean
  pinned?: boolean
  mutedUntil?: Date | null
  read?: boolean
  disappearingSeconds?: number
  deleted?: boolean
}

export interface StoredChat {
  chat: string
  archived: boolean
  pinned: boolean
  mutedUntil: Date | null
  markedUnread: boolean
  readAt: Date | null
  clearedAt: Date | null
  disappearingSeconds: number
}

type Row = {
  chat: string,
  archived: boolean,
  pinned: boolean,
  muted_until: Date | null,
  marked_unread: boolean,
  read_at: Date | null,
  cleared_at: Date | null,
  disappearing_seconds: number
}

const storedOf = (row: Row): StoredChat => ({
  chat: row.chat,
  archived: row.archived,
  pinned: row.pinned,
  mutedUntil: row.muted_until ? new Date(row.muted_until) : null,
  markedUnread: row.marked_unread,
  readAt: row.read_at ? new Date(row.read_at) : null,
  clearedAt: row.cleared_at ? new Date(row.cleared_at) : null,
  disappearingSeconds: row.disappearing_seconds
})

/** The state the API shows; a chat never changed is in WhatsApp's defaults. A mute that ran out is no mute. */
export function stateOf (chat: string, stored: StoredChat | undefined, now = Date.now()): ChatState {
  const mutedUntil = stored?.mutedUntil && stored.mutedUntil.getTime() > now ? stored.mutedUntil.toISOString() : null
  return {
    chat,
    archived: stored?.archived ?? false,
    pinned: stored?.pinned ?? false,
    mutedUntil,
    markedUnread: stored?.markedUnread ?? false,
    disappearingSeconds: stored?.disappearingSeconds ?? 0
  }
}

/** Chat states in PostgreSQL: written by the holder (its own changes, other devices' events), read by any replica. */
export class ChatStateStore {
  readonly #em: () => EntityManager

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  /**
   * Applies a change: flags as given; read clears a hand-made unread mark and moves the read mark to
   * now, unread sets the mark; a deletion resets the chat as WhatsApp does (nothing left to be unread).
   */
  async apply (companyId: string, chat: string, change: StateChange): Promise<StoredChat> {
    const sets: string[] = []
    const params: unknown[] = []
    const set = (column: string, value: unknown) => {
      sets.push(`${column} = ?`)
      params.push(value)
    }
    if (change.deleted) {
      for (const column of ['archived', 'pinned', 'marked_unread']) set(column, false)
      set('muted_until', null)
      sets.push('cleared_at = now()', 'read_at = now()')
    }
    if (change.archived !== undefined) set('archived', change.archived)
    if (change.pinned !== undefined) set('pinned', change.pinned)
    if (change.mutedUntil !== undefined) set('muted_until', change.mutedUntil)
    if (change.disappearingSeconds !== undefined) set('disappearing_seconds', change.disappearingSeconds)
    if (change.read === true) sets.push('marked_unread = false', 'read_at = now()')
    if (change.read === false) set('marked_unread', true)
    const connection = this.#em().getConnection()
    await connection.execute('insert into whatsapp_chat_states (company_id, chat) values (?, ?) on conflict do nothing', [companyId, chat])
    const updated: Row[] = await connection.execute<Row[]>(
      `update whatsapp_chat_states set ${[...sets, 'updated_at = now()'].join(', ')} where company_id = ? and chat = ? returning *`,
      [...params, companyId, chat])
    return storedOf(updated[0])
  }

  async get (companyId: string, chats: string[]): Promise<StoredChat[]> {
    if (chats.length === 0) return []
    const rows: Row[] = await this.#em().getConnection().execute<Row[]>(
      `select * from whatsapp_chat_states where company_id = ? and chat in (${chats.map(() => '?').join(', ')})`, [companyId, ...chats])
    return rows.map(storedOf)
  }

  /** The chats deleted at some time: the list leaves out what they held then. */
  async cleared (companyId: string): Promise<{ chat: string, at: Date }[]> {
    const rows: { chat: string, cleared_at: Date }[] = await this.#em().getConnection().execute(
      'select chat, cleared_at from whatsapp_chat_states where company_id = ? and cleared_at is not null', [companyId])
    return rows.map((row) => ({ chat: row.chat, at: new Date(row.cleared_at) }))
  }
}
