import { defineEntity, p } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { EntityManager } from '@mikro-orm/postgresql'
import { BoundedMap } from '../../core/bounded-map.ts'
import type { Sealer } from '../../core/sealing.ts'

/** A poll the company sent, with the secret its votes are sealed under (itself sealed, bound to the poll). */
export const PollSchema = defineEntity({
  name: 'Poll',
  tableName: 'whatsapp_polls',
  properties: {
    companyId: p.string().primary(),
    messageId: p.string().primary(),
    chat: p.string(),
    question: p.text(),
    options: p.json<string[]>(),
    selectableCount: p.integer(),
    secret: p.json<unknown>(),
    createdAt: p.datetime()
  }
})

/** Each voter's latest vote on a poll: one row per person, whichever of their names (LID, phone) the votes came under. */
export const PollVoteSchema = defineEntity({
  name: 'PollVote',
  tableName: 'whatsapp_poll_votes',
  properties: {
    companyId: p.string().primary(),
    pollMessageId: p.string().primary(),
    voter: p.string().primary(),
    phone: p.string().nullable(),
    lid: p.string().nullable(),
    selected: p.json<number[]>(),
    votedAtMs: p.bigint('number'),
    voteMessageId: p.string(),
    updatedAt: p.datetime()
  }
})

/** Votes for a poll this database does not know yet (sent a moment ago, its row not yet written): kept until it is. */
export const WaitingVoteSchema = defineEntity({
  name: 'WaitingPollVote',
  tableName: 'whatsapp_poll_votes_waiting',
  properties: {
    companyId: p.string().primary(),
    voteMessageId: p.string().primary(),
    pollMessageId: p.string(),
    vote: p.json<Record<string, unknown>>(),
    receivedAt: p.datetime()
  }
})

export class CreatePolls extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_polls (
      company_id varchar(64) not null,
      message_id varchar(128) not null,
      chat varchar(80) not null,
      question text not null,
      options jsonb not null,
      selectable_count integer not null,
      secret jsonb not null,
      created_at timestamptz not null,
      primary key (company_id, message_id)
    )`)
    this.addSql(`create table if not exists whatsapp_poll_votes (
      company_id varchar(64) not null,
      poll_message_id varchar(128) not null,
      voter varchar(80) not null,
      phone varchar(32),
      lid varchar(80),
      selected jsonb not null,
      voted_at_ms bigint not null,
      vote_message_id varchar(128) not null,
      updated_at timestamptz not null default now(),
      primary key (company_id, poll_message_id, voter)
    )`)
    this.addSql(`create table if not exists whatsapp_poll_votes_waiting (
      company_id varchar(64) not null,
      vote_message_id varchar(128) not null,
      poll_message_id varchar(128) not null,
      vote jsonb not null,
      received_at timestamptz not null default now(),
      primary key (company_id, vote_message_id)
    )`)
    this.addSql(`create index if not exists whatsapp_poll_votes_waiting_by_poll
      on whatsapp_poll_votes_waiting (company_id, poll_message_id)`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_poll_votes_waiting')
    this.addSql('drop table if exists whatsapp_poll_votes')
    this.addSql('drop table if exists whatsapp_polls')
  }
}

export const pollMigrations = [{ name: 'polls_001_polls_and_votes', class: CreatePolls }]
export const pollEntities = [PollSchema, PollVoteSchema, WaitingVoteSchema]

export interface StoredPoll {
  companyId: string
  messageId: string
  chat: string
  question: string
  options: string[]
  selectableCount: number
  secret: Buffer
  createdAt: Date
}

/** A vote, opened: the voter by both names as far as known, and the options it selects (indexes into the poll's). */
export interface OpenedVote {
  phone: string | null
  lid: string | null
  selected: number[]
  votedAtMs: number
  voteMessageId: string
}

export interface StoredVote extends OpenedVote {
  voter: string
}

/** What recording a vote did: `previous` is the vote it replaced (null: the voter's first); unchanged for an older or repeated one. */
export type VoteOutcome = { changed: true, previous: number[] | null } | { changed: false }

/** Polls kept in memory per replica (a few hundred bytes each). */
const KNOWN_POLLS = 1_000

/** A poll's secret is bound to its row when sealed: copied under another poll, it does not open. */
const secretRow = (companyId: string, messageId: string) => `poll/${companyId}/${messageId}`

/** One person's key among a poll's votes: the phone when known (it outlives a LID change), else the LID. */
const voterKey = (vote: { phone: string | null, lid: string | null }) => vote.phone ? `+${vote.phone}` : vote.lid!

type VoteRow = { voter: string, phone: string | null, lid: string | null, selected: number[], voted_at_ms: string, vote_message_id: string }

/** Polls and their votes in PostgreSQL: so a tally survives a takeover, and any replica answers it. */
export class PollStore {
  readonly #em: () => EntityManager
  readonly #sealer: Sealer
  /** Polls never change once sent: the ones votes arrive for are kept, opened, instead of read and unsealed per vote. */
  readonly #known = new BoundedMap<string, StoredPoll>(KNOWN_POLLS)

  constructor (em: () => EntityManager, sealer: Sealer) {
    this.#em = em
    this.#sealer = sealer
  }

  async save (poll: StoredPoll): Promise<void> {
    // Sealed as JSON text, which is what Sealer.open gives back.
    const secret = this.#sealer.seal(JSON.stringify(poll.secret.toString('base64')), secretRow(poll.companyId, poll.messageId))
    await this.#em().execute(`insert into whatsapp_polls
      (company_id, message_id, chat, question, options, selectable_count, secret, created_at)
      values (?, ?, ?, ?, ?::jsonb, ?, ?::jsonb, ?) on conflict (company_id, message_id) do nothing`,
    [poll.companyId, poll.messageId, poll.chat, poll.question, JSON.stringify(poll.options), poll.selectableCount,
      JSON.stringify(secret), poll.createdAt], 'run')
  }

  async find (companyId: string, messageId: string): Promise<StoredPoll | undefined> {
    const key = `${companyId}/${messageId}`
    const known = this.#known.get(key)
    if (known) return known
    type Row = { chat: string, question: string, options: string[], selectable_count: number, secret: unknown, created_at: Date }
    const row = await this.#em().execute<Row>(
      'select chat, question, options, selectable_count, secret, created_at from whatsapp_polls where company_id = ? and message_id = ?',
      [companyId, messageId], 'get')
    if (!row) return undefined
    const secret = Buffer.from(JSON.parse(this.#sealer.open(row.secret, secretRow(companyId, messageId))) as string, 'base64')
    const poll: StoredPoll = {
      companyId,
      messageId,
      chat: row.chat,
      question: row.question,
      options: row.options,
      selectableCount: row.selectable_count,
      secret,
      createdAt: new Date(row.created_at)
    }
    this.#known.set(key, poll)
    return poll
  }

  /**
   * Records a vote as the voter's latest unless a later one is already counted (votes may arrive
   * out of order across a takeover): the latest by the voter's own stamp, then by id, so every
   * order ends in the same tally. Rows the voter had under another name (a LID before the phone
   * was known) become this one. One vote at a time per poll: the poll's row is locked.
   */
  async recordVote (companyId: string, pollMessageId: string, vote: OpenedVote): Promise<VoteOutcome> {
    return this.#em().transactional(async (tx) => {
      await tx.execute('select 1 from whatsapp_polls where company_id = ? and message_id = ? for update', [companyId, pollMessageId], 'get')
      const rows = await tx.execute<VoteRow[]>(`select voter, phone, lid, selected, voted_at_ms, vote_message_id from whatsapp_poll_votes
        where company_id = ? and poll_message_id = ? and ((phone is not null and phone = ?) or (lid is not null and lid = ?))`,
      [companyId, pollMessageId, vote.phone, vote.lid], 'all')
      const latest = rows.reduce<VoteRow | undefined>((best, row) => !best || isLater(row, best) ? row : best, undefined)
      const phone = vote.phone ?? rows.find((row) => row.phone)?.phone ?? null
      const lid = vote.lid ?? rows.find((row) => row.lid)?.lid ?? null
      const incoming = { voted_at_ms: String(vote.votedAtMs), vote_message_id: vote.voteMessageId }
      const kept = latest && !isLater(incoming, latest) ? latest : undefined
      const winner = kept
        ? { selected: kept.selected, votedAtMs: Number(kept.voted_at_ms), voteMessageId: kept.vote_message_id }
        : vote
      if (rows.length > 0) {
        await tx.execute(`delete from whatsapp_poll_votes where company_id = ? and poll_message_id = ?
          and voter in (${rows.map(() => '?').join(', ')})`, [companyId, pollMessageId, ...rows.map((row) => row.voter)], 'run')
      }
      await tx.execute(`insert into whatsapp_poll_votes
        (company_id, poll_message_id, voter, phone, lid, selected, voted_at_ms, vote_message_id, updated_at)
        values (?, ?, ?, ?, ?, ?::jsonb, ?, ?, now())`,
      [companyId, pollMessageId, voterKey({ phone, lid }), phone, lid, JSON.stringify(winner.selected), winner.votedAtMs,
        winner.voteMessageId], 'run')
      return kept ? { changed: false } : { changed: true, previous: latest?.selected ?? null }
    })
  }

  /** The company's latest polls' ids, newest first. */
  async latest (companyId: string, limit: number): Promise<string[]> {
    const rows = await this.#em().execute<{ message_id: string }[]>(`select message_id from whatsapp_polls
      where company_id = ? order by created_at desc, message_id desc limit ?`, [companyId, limit], 'all')
    return rows.map((row) => row.message_id)
  }

  async votes (companyId: string, pollMessageId: string): Promise<StoredVote[]> {
    const rows = await this.#em().execute<VoteRow[]>(`select voter, phone, lid, selected, voted_at_ms, vote_message_id
      from whatsapp_poll_votes where company_id = ? and poll_message_id = ? order by voted_at_ms, voter`, [companyId, pollMessageId], 'all')
    return rows.map((row) => ({
      voter: row.voter,
      phone: row.phone,
      lid: row.lid,
      selected: row.selected,
      votedAtMs: Number(row.voted_at_ms),
      voteMessageId: row.vote_message_id
    }))
  }

  /** Keeps a vote for a poll not stored yet. */
  async wait (companyId: string, voteMessageId: string, pollMessageId: string, vote: Record<string, unknown>): Promise<void> {
    await this.#em().execute(`insert into whatsapp_poll_votes_waiting (company_id, vote_message_id, poll_message_id, vote)
      values (?, ?, ?, ?::jsonb) on conflict do nothing`, [companyId, voteMessageId, pollMessageId, JSON.stringify(vote)], 'run')
  }

  /** The votes waiting for this poll; each is forgotten once counted (forgetWaiting). */
  async waiting (companyId: string, pollMessageId: string): Promise<Record<string, unknown>[]> {
    const rows = await this.#em().execute<{ vote: Record<string, unknown> }[]>(`select vote from whatsapp_poll_votes_waiting
      where company_id = ? and poll_message_id = ?`, [companyId, pollMessageId], 'all')
    return rows.map((row) => row.vote)
  }

  async forgetWaiting (companyId: string, voteMessageId: string): Promise<void> {
    await this.#em().execute('delete from whatsapp_poll_votes_waiting where company_id = ? and vote_message_id = ?',
      [companyId, voteMessageId], 'run')
  }

  /** Seals every poll secret that is under an older key (`npm run rotate-keys`); how many it sealed. */
  async reseal (): Promise<number> {
    type Row = { company_id: string, message_id: string, secret: unknown }
    const rows = await this.#em().execute<Row[]>('select company_id, message_id, secret from whatsapp_polls', [], 'all')
    let sealed = 0
    for (const row of rows.filter((candidate) => this.#sealer.stale(candidate.secret))) {
      const bound = secretRow(row.company_id, row.message_id)
      const result = await this.#em().execute(`update whatsapp_polls set secret = ?::jsonb
        where company_id = ? and message_id = ? and secret = ?::jsonb`,
      [JSON.stringify(this.#sealer.seal(this.#sealer.open(row.secret, bound), bound)), row.company_id,
        row.message_id, JSON.stringify(row.secret)], 'run')
      sealed += (result as { affectedRows?: number }).affectedRows ?? 0
    }
    return sealed
  }
}

/** Whether vote `a` is later than `b`: by the voter's stamp, then by message id (any fixed order makes replays agree). */
function isLater (a: Pick<VoteRow, 'voted_at_ms' | 'vote_message_id'>, b: Pick<VoteRow, 'voted_at_ms' | 'vote_message_id'>): boolean {
  const at = Number(a.voted_at_ms) - Number(b.voted_at_ms)
  return at !== 0 ? at > 0 : a.vote_message_id > b.vote_message_id
}
