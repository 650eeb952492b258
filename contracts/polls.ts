import { Type, type Static } from 'typebox'
import { DateTime } from './common.ts'
import { MAX_MESSAGE_ID_LENGTH, IdempotencyKey, SendReply } from './sessions.ts'
import { ScheduleFields } from './scheduled.ts'

/** WhatsApp's limits: 2 to 12 options; an option's text is what votes name (by its hash), so no two may be equal. */
export const POLL_MAX_OPTIONS = 12
const Option = Type.String({ minLength: 1, maxLength: 100, description: 'An option\'s text (votes name it by its SHA-256)' })

export const PollSendRequest = Type.Object({
  phone: Type.String({
    minLength: 1, maxLength: 64, description: 'The chat: a phone (any notation), a phone or LID JID, or a group\'s JID (`…@g.us`)'
  }),
  question: Type.String({ minLength: 1, maxLength: 255, description: 'The poll\'s question' }),
  options: Type.Array(Option, { minItems: 2, maxItems: POLL_MAX_OPTIONS, uniqueItems: true }),
  multipleAnswers: Type.Optional(Type.Boolean({ description: 'Voters may pick several options (default: one)' })),
  idempotencyKey: Type.Optional(IdempotencyKey),
  ...ScheduleFields
}, { additionalProperties: false })
export type PollSendRequest = Static<typeof PollSendRequest>

export const PollSendReply = Type.Object({
  ...SendReply.properties,
  question: Type.String(),
  options: Type.Array(Type.String())
}, { description: 'WhatsApp took the poll; its tally is at GET …/messages/{messageId}/poll' })
export type PollSendReply = Static<typeof PollSendReply>

const Voter = {
  phone: Type.Union([Type.String(), Type.Null()], { description: 'The voter\'s E.164 digits, when known' }),
  lid: Type.Union([Type.String(), Type.Null()], { description: 'The voter\'s LID JID, when known' })
}

export const PollVoter = Type.Object({ ...Voter, votedAt: DateTime('When the voter\'s device stamped the vote') })
export type PollVoter = Static<typeof PollVoter>

export const PollTally = Type.Object({
  messageId: Type.String(),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'The contact the poll went to; null in a group' }),
  groupId: Type.Union([Type.String(), Type.Null()], { description: 'The group the poll went to' }),
  question: Type.String(),
  multipleAnswers: Type.Boolean(),
  options: Type.Array(Type.Object({
    name: Type.String(),
    votes: Type.Integer({ minimum: 0 }),
    voters: Type.Array(PollVoter)
  })),
  voters: Type.Integer({ minimum: 0, description: 'People whose latest vote selects at least one option' }),
  createdAt: DateTime('When WhatsApp took the poll')
}, { description: 'Each voter counted once, by their latest vote (a LID and a phone of one person are one voter)' })
export type PollTally = Static<typeof PollTally>

export const PollTallyReply = Type.Object({ success: Type.Literal(true), poll: PollTally })
export type PollTallyReply = Static<typeof PollTallyReply>

export const PollsListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10, description: 'How many of the latest polls' }))
}, { additionalProperties: false })
export type PollsListQuery = Static<typeof PollsListQuery>

export const PollsListReply = Type.Object({ success: Type.Literal(true), polls: Type.Array(PollTally, { description: 'Newest first' }) })
export type PollsListReply = Static<typeof PollsListReply>

export const PollMessageRequest = Type.Object({
  messageId: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH, description: 'The poll\'s message id' })
}, { additionalProperties: false })
export type PollMessageRequest = Static<typeof PollMessageRequest>

export const PollVoteEventData = Type.Object({
  pollMessageId: Type.String(),
  voteMessageId: Type.String({ description: 'The vote\'s own message id' }),
  ...Voter,
  groupId: Type.Union([Type.String(), Type.Null()], { description: 'A poll in a group: the group\'s JID' }),
  selectedOptions: Type.Array(Type.String(), { description: 'The options the voter picks now; empty: the vote was withdrawn' }),
  previousOptions: Type.Union([Type.Array(Type.String()), Type.Null()], {
    description: 'What the voter had picked before; null: a first vote'
  }),
  votedAt: DateTime('When the voter\'s device stamped the vote')
}, { description: 'A contact voted on a company\'s poll, or changed their vote (a vote older than the one counted is not an event)' })
export type PollVoteEventData = Static<typeof PollVoteEventData>
