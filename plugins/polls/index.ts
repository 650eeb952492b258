import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, CompanyParams, CONTROL_SCOPES, ErrorCode, MessageParams, PollMessageRequest, PollSendReply, PollSendRequest,
  PollsListQuery, PollsListReply, PollTallyReply, userOfJid, type EventData, type PollTally
} from '../../contracts/index.ts'
import type { EntityManager } from '@mikro-orm/postgresql'
import { GatewayError } from '../../core/errors.ts'
import type { Sealer } from '../../core/sealing.ts'
import { errorAnswer } from '../../core/plugins/docs.ts'
import { chatOf, declareHolderCommand, deliveryFields, type InboundPollVote, type WaSocket } from '../session-pool/index.ts'
import { PollStore, pollEntities, pollMigrations } from './store.ts'
import { deserializeVote, takeVote } from './votes.ts'

export const entities = pollEntities
export const migrations = pollMigrations

/** Seals every poll secret under the current key (`npm run rotate-keys`); how many it sealed. */
export const resealPollSecrets = (em: () => EntityManager, sealer: Sealer) => new PollStore(em, sealer).reseal()

const TAGS = ['polls']
/** WhatsApp's `selectableOptionsCount`: 1 is a single choice; 0 lets a voter pick any number. */
const SINGLE_CHOICE = 1
const ANY_NUMBER = 0
/** Polls a list answers unless asked for another number. */
const DEFAULT_LISTED = 10

/**
 * Polls: send one to a contact or a group, and count its votes. rc14 no longer opens votes, so each
 * poll's secret is kept (sealed) in PostgreSQL and every vote the holder's connection gets is opened
 * here, whichever names it was sealed under, and recorded as its voter's latest: the tally survives
 * a takeover and any replica answers it.
 */
export default fp(async (app) => {
  const store = new PollStore(() => app.orm.em.fork(), app.sealer)
  /** Vote handling under way: a replica closing finishes it first (the votes were acknowledged to WhatsApp). */
  const taking = new Set<Promise<void>>()

  type Publish = (data: EventData<'poll_vote'>) => void
  const take = (socket: WaSocket, companyId: string, votes: InboundPollVote[], publish: Publish, waited = false) => {
    const work = (async () => {
      for (const vote of votes) {
        const ids = { companyId, pollMessageId: vote.pollMessageId, voteMessageId: vote.id }
        try {
          const result = await takeVote(app, store, socket, companyId, vote, waited)
          if (result.kind === 'counted') publish(result.event)
          else if (result.kind === 'unreadable') app.log.warn(ids, 'a poll vote did not open under any name of the voter or the number')
        } catch (err) {
          app.log.error({ err, ...ids }, 'a poll vote could not be recorded')
        }
      }
    })()
    taking.add(work)
    void work.finally(() => taking.delete(work))
  }

  declareHolderCommand(app, {
    name: 'poll-send',
    request: PollSendRequest,
    reply: PollSendReply,
    schedulable: 'poll-send',
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/polls',
      operationId: 'sendPoll',
      tags: TAGS,
      summary: 'Send a poll (2-12 options, one answer or several) to a contact or a group; votes arrive as `poll_vote` events' +
        ' and its tally is at GET …/messages/{messageId}/poll',
      errors: [404, 409, 422, 429, 503, 504]
    },
    handle: async ({ companyId, request, lease, idempotencyKey, messageId, sentFor }) => {
      const chat = await chatOf(app, companyId, request.phone)
      const multipleAnswers = request.multipleAnswers ?? false
      const poll = { question: request.question, options: request.options, selectableCount: multipleAnswers ? ANY_NUMBER : SINGLE_CHOICE }
      const reply = await app.outbound.send({
        companyId,
        epoch: lease.epoch,
        kind: 'poll',
        recipient: chat.recipient,
        idempotencyKey,
        details: {
          text: poll.question,
          poll: { question: poll.question, options: poll.options, multipleAnswers },
          ...(chat.group ? { groupId: chat.jid } : {}),
          phone: chat.phone,
          lid: chat.lid,
          ...sentFor
        },
        write: async (socket) => {
          const sent = await socket.polls.send(chat.jid, poll, messageId ? { messageId } : {})
          // The poll went out: without its secret no vote could ever be read, so it is kept before the send counts as done.
          // Now, in milliseconds (WhatsApp's timestamp has seconds): polls sent within a second keep their order.
          const createdAt = new Date()
          await store.save({ companyId, messageId: sent.messageId, chat: chat.jid, ...poll, secret: sent.secret, createdAt })
            .catch((err: unknown) => app.log.error({ err, companyId, messageId: sent.messageId },
              'a sent poll was not stored: its votes cannot be counted'))
          return sent
        }
      }, (sent, queuedMs) => ({
        ...deliveryFields(companyId, chat.phone ?? chat.jid, sent, queuedMs), question: poll.question, options: poll.options
      }))
      // Votes that came before the poll's row (a voter faster than the database) are counted now.
      const socket = app.sessionPool.get(companyId)?.socket
      const waiting = await store.waiting(companyId, reply.messageId)
      if (socket && waiting.length > 0) {
        const publish: Publish = (data) => app.events.publish(companyId, 'poll_vote', data, { epoch: lease.epoch })
        take(socket, companyId, waiting.map(deserializeVote), publish, true)
      }
      return reply
    }
  })

  const tallyOf = async (companyId: string, messageId: string): Promise<PollTally> => {
    const poll = await store.find(companyId, messageId)
    if (!poll) throw new GatewayError(ErrorCode.NOT_FOUND, `no poll ${messageId} of company ${companyId}`)
    const votes = await store.votes(companyId, messageId)
    const group = poll.chat.endsWith('@g.us')
    return {
      messageId,
      phone: !group && poll.chat.endsWith('@s.whatsapp.net') ? userOfJid(poll.chat) : null,
      groupId: group ? poll.chat : null,
      question: poll.question,
      multipleAnswers: poll.selectableCount !== SINGLE_CHOICE,
      options: poll.options.map((name, index) => {
        const voters = votes.filter((vote) => vote.selected.includes(index))
        return {
          name,
          votes: voters.length,
          voters: voters.map((vote) => ({ phone: vote.phone, lid: vote.lid, votedAt: new Date(vote.votedAtMs).toISOString() }))
        }
      }),
      voters: votes.filter((vote) => vote.selected.length > 0).length,
      createdAt: poll.createdAt.toISOString()
    }
  }
  const tally = async (companyId: string, messageId: string) => ({ success: true as const, poll: await tallyOf(companyId, messageId) })
  const latest = async (companyId: string, query: PollsListQuery) => {
    const ids = await store.latest(companyId, query.limit ?? DEFAULT_LISTED)
    return { success: true as const, polls: await Promise.all(ids.map((id) => tallyOf(companyId, id))) }
  }

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/sessions/:companyId/messages/:messageId/poll', {
    config: { access: { scope: CONTROL_SCOPES['polls.get'], company: 'params' } },
    schema: {
      operationId: 'pollTally',
      tags: TAGS,
      summary: 'A poll\'s tally: each option\'s votes and voters, every voter counted once by their latest vote',
      params: MessageParams,
      response: {
        200: PollTallyReply, 404: errorAnswer('No such poll of this company, or a company the credential does not cover (`NOT_FOUND`)')
      }
    }
  }, async (request) => tally(request.params.companyId, request.params.messageId))

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/sessions/:companyId/polls', {
    config: { access: { scope: CONTROL_SCOPES['polls.list'], company: 'params' } },
    schema: {
      operationId: 'listPolls',
      tags: TAGS,
      summary: 'The company\'s latest polls, newest first, each with its tally',
      params: CompanyParams,
      querystring: PollsListQuery,
      response: { 200: PollsListReply }
    }
  }, async (request) => latest(request.params.companyId, request.query))

  const tallying = app.bus.handle(app.subjects.polls('*', 'get'),
    { request: PollMessageRequest, reply: PollTallyReply, queue: ANY_REPLICA_QUEUE },
    (request, context) => tally(context.companyId, request.messageId))
  const listing = app.bus.handle(app.subjects.polls('*', 'list'),
    { request: PollsListQuery, reply: PollsListReply, queue: ANY_REPLICA_QUEUE },
    (query, context) => latest(context.companyId, query))

  // Every vote the holder's connection gets is opened and counted, under the session's lease.
  app.sessionPool.onSocket((socket, { companyId, emit }) => {
    socket.on('pollVotes', (votes) => take(socket, companyId, votes, (data) => emit('poll_vote', data)))
  })

  app.addHook('preClose', async () => { await Promise.allSettled([...taking]) })
  app.addHook('onClose', async () => { await Promise.all([tallying.close(), listing.close()]) })
}, { name: 'polls', dependencies: ['config', 'bus', 'db', 'events', 'sealing', 'phone', 'conversations', 'ownership', 'session-pool'] })
