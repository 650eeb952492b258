import type { NatsConnection, MsgHdrs } from '@nats-io/nats-core'
import { createInbox, headers as createHeaders, errors as natsErrors } from '@nats-io/nats-core'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { jetstream } from '@nats-io/jetstream'
import { Objm, type ObjectStore } from '@nats-io/obj'
import { mediaObjectName } from './media.ts'
import { ErrorCode, GatewayClientError, type ErrorReply } from './errors.ts'
import { DEFAULT_NAMESPACE, subjectsFor } from './subjects.ts'
import type { NormalizePhoneReply, NormalizePhoneRequest } from './phone.ts'
import type {
  AutoReactionRules, AutoReactionRulesReply, InitializeReply, InitializeRequest, LogoutReply, ReactionReply, ReactionRequest,
  SendReply, SendRequest, SessionsList, SessionsListQuery, SessionStatus
} from './sessions.ts'
import type { OwnerReply } from './cluster.ts'
import type {
  GroupCreateRequest, GroupIdReply, GroupInviteReply, GroupJoinReply, GroupParticipantsReply, GroupParticipantsRequest, GroupPictureRequest,
  GroupReply, GroupsListReply, GroupUpdateRequest, JoinRequestsReply, JoinRequestsUpdate
} from './groups.ts'
import type { CallRejectReply, CallSettings, CallSettingsReply, CallsPage, CallsQuery } from './calls.ts'
import type { StatusPostReply, StatusPostRequest } from './status.ts'
import type {
  ChatReply, DeleteRequest, EditRequest, MessageReply, MessagesPage, MessagesQuery, NumberCheckReply, PresenceRequest, ReadRequest
} from './conversations.ts'
import type { ProxyCheckReply, ProxyReply, ProxySetRequest } from './proxy.ts'
import type { HistoryMediaReply, HistoryRequest, HistoryRequestReply, HistoryStatusReply } from './history.ts'
import type { PollSendReply, PollSendRequest, PollsListQuery, PollsListReply, PollTallyReply } from './polls.ts'
import type {
  QuietHours, QuietHoursReply, SchedulableCommand, ScheduledListQuery, ScheduledListReply, ScheduledMessageReply, ScheduledReply
} from './scheduled.ts'
import type { CampaignCreateRequest, CampaignReply, CampaignReportReply, CampaignsReply } from './campaigns.ts'
import type {
  BlocklistReply, BlockReply, BlockRequest, ContactPictureReply, ContactProfileReply, OwnProfileReply, ProfileChangedReply,
  ProfilePictureRequest, ProfileUpdateRequest
} from './profiles.ts'
import type { ChatDeletedReply, ChatsPage, ChatsQuery, ChatStateReply, ChatUpdateRequest } from './chats.ts'

export const DEFAULT_CLIENT_TIMEOUT_MS = 5_000
const HOLDER_RETRY_INTERVAL_MS = 50

export interface GatewayClientOptions {
  timeoutMs?: number
  /** The gateway deployment's NATS_NAMESPACE (default `wa`). */
  namespace?: string
  /**
   * How long a command waits for a holder when nobody answers (a handoff between replicas takes
   * tens of milliseconds). Default 0: NOT_CONNECTED at once, as for a company nobody holds.
   */
  holderWaitMs?: number
  /** Called before every request, e.g. to inject `traceparent`. */
  decorateHeaders?: (headers: MsgHdrs) => void
  /**
   * Where replies come back (e.g. `_INBOX_backend`), when NATS permissions let this user receive on
   * its own inbox prefix only (users sharing an account). Default: the connection's.
   */
  inboxPrefix?: string
  /** The deployment's MEDIA_BUCKET (default `<namespace>_media`), for `putMedia` and `getMedia`. */
  mediaBucket?: string
}

/** Whether a NATS request failed because nobody subscribes to the subject (for a command: no replica holds the company). */
function isNoResponders (err: unknown): boolean {
  const cause = err instanceof natsErrors.RequestError ? err.cause : err
  return cause instanceof natsErrors.NoRespondersError || (err instanceof natsErrors.RequestError && err.isNoResponders())
}

/**
 * Maps a failed NATS request to the gateway's error codes: nobody subscribed means nobody holds (or
 * serves) it, which is NOT_CONNECTED; silence past the deadline is TIMEOUT. Undefined for other failures.
 */
export function requestFailure (err: unknown, subject: string, timeoutMs: number): GatewayClientError | undefined {
  const cause = err instanceof natsErrors.RequestError ? err.cause : err
  if (isNoResponders(err)) {
    return new GatewayClientError(ErrorCode.NOT_CONNECTED, `no gateway replica answers ${subject}`, undefined, {
      noResponders: true,
      cause: err
    })
  }
  if (cause instanceof natsErrors.TimeoutError) {
    return new GatewayClientError(ErrorCode.TIMEOUT, `${subject} did not answer within ${timeoutMs} ms`, undefined, { cause: err })
  }
  return undefined
}

export function isErrorReply (value: unknown): value is ErrorReply {
  return typeof value === 'object' && value !== null && (value as { success?: unknown }).success === false &&
    typeof (value as { error?: unknown }).error === 'object'
}

/** The exception an error reply stands for: the one place a reply becomes an error again. */
export function errorOfReply (reply: ErrorReply): GatewayClientError {
  const { code, message, details, retryAfter, accepted } = reply.error
  return new GatewayClientError(code, message, details, { retryAfter, accepted })
}

/**
 * Whether a command failed only because the company is between holders: nobody answered, or the
 * old holder said it is handing off (a retryAfter on NOT_CONNECTED). The next holder answers soon.
 */
export function isBetweenHolders (err: unknown): boolean {
  return err instanceof GatewayClientError && err.code === ErrorCode.NOT_CONNECTED && (err.noResponders || err.retryAfter !== undefined)
}

/**
 * Runs `attempt` again while the company is between holders, for up to `waitMs` (a handoff takes
 * tens of milliseconds). `stillWanted` can stop early, e.g. when nobody should hold the company.
 */
export async function retryBetweenHolders<Reply> (
  attempt: () => Promise<Reply>,
  waitMs: number,
  stillWanted: () => boolean = () => true
): Promise<Reply> {
  const deadline = performance.now() + waitMs
  for (;;) {
    try {
      return await attempt()
    } catch (err) {
      if (!isBetweenHolders(err) || !stillWanted() || performance.now() + HOLDER_RETRY_INTERVAL_MS > deadline) throw err
      await sleep(HOLDER_RETRY_INTERVAL_MS)
    }
  }
}

/** A typed NATS client for the gateway's operations, for other services to import. */
export function createGatewayClient (nc: NatsConnection, options: GatewayClientOptions = {}) {
  const timeout = options.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS
  const subjects = subjectsFor(options.namespace)

  /** A holder command: with `holderWaitMs`, asked again while nobody holds the company. */
  function command<Reply> (companyId: string, name: string, payload: unknown): Promise<Reply> {
    return retryBetweenHolders(() => call<Reply>(subjects.command(companyId, name), payload), options.holderWaitMs ?? 0)
  }

  async function call<Reply> (subject: string, payload: unknown): Promise<Reply> {
    let headers: MsgHdrs | undefined
    if (options.decorateHeaders) {
      headers = createHeaders()
      options.decorateHeaders(headers)
    }
    let reply
    try {
      // No headers unless there are some: an empty set still costs encoding on both ends.
      reply = await nc.request(subject, JSON.stringify(payload), {
        timeout,
        headers: headers && headers.keys().length > 0 ? headers : undefined,
        // A reply subject of the caller's own prefix needs a request of its own (no shared mux).
        ...(options.inboxPrefix ? { noMux: true, reply: createInbox(options.inboxPrefix) } : {})
      })
    } catch (err) {
      throw requestFailure(err, subject, timeout) ?? err
    }
    const body: unknown = reply.json()
    if (isErrorReply(body)) throw errorOfReply(body)
    return body as Reply
  }

  let store: Promise<ObjectStore> | undefined
  const mediaStore = () => {
    store ??= new Objm(jetstream(nc)).open(options.mediaBucket ?? `${options.namespace ?? DEFAULT_NAMESPACE}_media`)
    return store
  }

  return {
    normalizePhone: (phone: string, country?: string) =>
      call<NormalizePhoneReply>(subjects.phoneNormalize, { phone, country } satisfies NormalizePhoneRequest),
    /** Sends through the replica holding the company; NOT_CONNECTED at once when none does. */
    /** With `sendAt` the holder schedules it instead (a ScheduledReply); `schedule` does so from any replica. */
    send: <R extends SendRequest>(companyId: string, request: R) =>
      command<R extends { sendAt: string } ? ScheduledReply : SendReply>(companyId, 'send', request),
    /** Reacts to a message through the holder; `emoji: ''` removes the reaction. */
    react: (companyId: string, request: ReactionRequest) => command<ReactionReply>(companyId, 'react', request),
    autoReactionRules: (companyId: string) => call<AutoReactionRulesReply>(subjects.autoReactionRules(companyId, 'get'), {}),
    setAutoReactionRules: (companyId: string, rules: AutoReactionRules) =>
      call<AutoReactionRulesReply>(subjects.autoReactionRules(companyId, 'set'), rules),
    status: (companyId: string) => command<SessionStatus>(companyId, 'status', {}),
    logout: (companyId: string) => command<LogoutReply>(companyId, 'logout', {}),
    owner: (companyId: string) => command<OwnerReply>(companyId, 'owner', {}),
    /** Any replica answers: marks the company online and returns its QR, pairing code or connection. */
    initialize: (companyId: string, request: InitializeRequest = {}) => call<InitializeReply>(subjects.initialize(companyId), request),
    /** A page of the known companies (`next` names the page after it). */
    listSessions: (page: SessionsListQuery = {}) => call<SessionsList>(subjects.sessionsList, page),
    /** Marks messages of a chat read (the contact gets read receipts). */
    read: (companyId: string, request: ReadRequest) => command<ChatReply>(companyId, 'read', request),
    /** Typing, recording or paused in a chat; available or unavailable for the account. */
    presence: (companyId: string, request: PresenceRequest) => command<ChatReply>(companyId, 'presence', request),
    /** Whether each phone (up to 50) is on WhatsApp, with its JID and LID (under the company's number-check budget). */
    checkNumbers: (companyId: string, phones: string[]) => command<NumberCheckReply>(companyId, 'check-numbers', { phones }),
    /** Edits a text the company sent (within WhatsApp's 15 minutes). */
    edit: (companyId: string, request: EditRequest) => command<SendReply>(companyId, 'edit', request),
    /** Deletes a message the company sent, for everyone. */
    deleteMessage: (companyId: string, request: DeleteRequest) => command<SendReply>(companyId, 'delete', request),
    /** The groups the company's number is in. */
    listGroups: (companyId: string) => command<GroupsListReply>(companyId, 'groups-list', {}),
    getGroup: (companyId: string, groupId: string) => command<GroupReply>(companyId, 'group-get', { groupId }),
    /** A group with these participants (phones); the company's number is its superadmin. */
    createGroup: (companyId: string, request: GroupCreateRequest) => command<GroupReply>(companyId, 'group-create', request),
    /** Add, remove, promote or demote: each participant's outcome. */
    updateGroupParticipants: (companyId: string, request: GroupParticipantsRequest) =>
      command<GroupParticipantsReply>(companyId, 'group-participants', request),
    /** Subject, description, settings: answers the group as it is then. */
    updateGroup: (companyId: string, request: GroupUpdateRequest) => command<GroupReply>(companyId, 'group-update', request),
    setGroupPicture: (companyId: string, request: GroupPictureRequest) => command<GroupIdReply>(companyId, 'group-picture', request),
    groupInvite: (companyId: string, groupId: string) => command<GroupInviteReply>(companyId, 'group-invite', { groupId }),
    revokeGroupInvite: (companyId: string, groupId: string) => command<GroupInviteReply>(companyId, 'group-revoke-invite', { groupId }),
    groupInviteInfo: (companyId: string, code: string) => command<GroupReply>(companyId, 'group-invite-info', { code }),
    joinGroup: (companyId: string, code: string) => command<GroupJoinReply>(companyId, 'group-join', { code }),
    groupJoinRequests: (companyId: string, groupId: string) => command<JoinRequestsReply>(companyId, 'group-join-requests', { groupId }),
    decideGroupJoinRequests: (companyId: string, request: JoinRequestsUpdate) =>
      command<GroupParticipantsReply>(companyId, 'group-decide-join-requests', request),
    leaveGroup: (companyId: string, groupId: string) => command<GroupIdReply>(companyId, 'group-leave', { groupId }),
    /** A poll to a contact or a group; votes arrive as `poll_vote` events. */
    sendPoll: (companyId: string, request: PollSendRequest) => command<PollSendReply>(companyId, 'poll-send', request),
    /** A poll's tally: each option's votes and voters, every voter once by their latest vote (any replica answers). */
    pollTally: (companyId: string, messageId: string) => call<PollTallyReply>(subjects.polls(companyId, 'get'), { messageId }),
    /** The company's latest polls, each with its tally. */
    listPolls: (companyId: string, query: PollsListQuery = {}) => call<PollsListReply>(subjects.polls(companyId, 'list'), query),
    /** The number's own name, about, picture and business profile. */
    profile: (companyId: string) => command<OwnProfileReply>(companyId, 'profile-get', {}),
    updateProfile: (companyId: string, request: ProfileUpdateRequest) => command<ProfileChangedReply>(companyId, 'profile-update', request),
    /** Sets the number's picture (a JPEG or PNG, base64). */
    setProfilePicture: (companyId: string, request: ProfilePictureRequest) =>
      command<ProfileChangedReply>(companyId, 'profile-picture', request),
    removeProfilePicture: (companyId: string) => command<ProfileChangedReply>(companyId, 'profile-picture-remove', {}),
    /** A contact's picture (cached until its URL expires), about and business profile; `phone` may be a LID JID. */
    contactProfile: (companyId: string, phone: string) => command<ContactProfileReply>(companyId, 'contact-profile', { phone }),
    contactPicture: (companyId: string, phone: string, quality: 'image' | 'preview' = 'image') =>
      command<ContactPictureReply>(companyId, 'contact-picture', { phone, quality }),
    blocklist: (companyId: string) => command<BlocklistReply>(companyId, 'blocklist-get', {}),
    /** Blocks or unblocks a contact (a `blocklist_update` event follows). */
    updateBlocklist: (companyId: string, request: BlockRequest) => command<BlockReply>(companyId, 'blocklist-update', request),
    /** Declines a ringing call (the holder's connection rejects it); `rejected: false` when it was already over. */
    rejectCall: (companyId: string, callId: string) => command<CallRejectReply>(companyId, 'call-reject', { callId }),
    /** The calls the company received, most recent first (any replica answers). */
    calls: (companyId: string, query: CallsQuery = {}) => call<CallsPage>(subjects.calls(companyId, 'calls.list'), query),
    /** Whether calls are declined automatically, and the text each caller is answered with. */
    callSettings: (companyId: string) => call<CallSettingsReply>(subjects.calls(companyId, 'call-settings.get'), {}),
    setCallSettings: (companyId: string, settings: CallSettings) =>
      call<CallSettingsReply>(subjects.calls(companyId, 'call-settings.set'), settings),
    /** Archive, pin, mute, mark read or unread, set the disappearing timer: answers the chat's state then. */
    updateChat: (companyId: string, request: ChatUpdateRequest) => command<ChatStateReply>(companyId, 'chat-update', request),
    /** Deletes the chat on every device of the number (the history keeps its messages). */
    deleteChat: (companyId: string, chat: string) => command<ChatDeletedReply>(companyId, 'chat-delete', { chat }),
    /** A page of the chats, latest activity first: state, last message, unread count (any replica answers). */
    chats: (companyId: string, query: ChatsQuery = {}) => call<ChatsPage>(subjects.chats(companyId), query),
    /** The company's proxy (its own, or the deployment's), without its password. */
    proxy: (companyId: string) => call<ProxyReply>(subjects.proxy(companyId, 'get'), {}),
    /** Sets the company's proxy; its connection reconnects through it. */
    setProxy: (companyId: string, request: ProxySetRequest) => call<ProxyReply>(subjects.proxy(companyId, 'set'), request),
    removeProxy: (companyId: string) => call<ProxyReply>(subjects.proxy(companyId, 'delete'), {}),
    /** Opens a tunnel through the company's proxy to WhatsApp and times it. */
    checkProxy: (companyId: string) => call<ProxyCheckReply>(subjects.proxy(companyId, 'check'), {}),
    /** How far the import of the phone's history is (any replica answers). */
    historyStatus: (companyId: string) => call<HistoryStatusReply>(subjects.historyStatus(companyId), {}),
    /** Asks the phone for older messages of a chat; they arrive as a `history_sync` event (syncType `on_demand`) and in the history. */
    requestHistory: (companyId: string, request: HistoryRequest) => command<HistoryRequestReply>(companyId, 'history-request', request),
    /** Fetches the file of an imported history message into the media store (then GET …/media/:objectId). */
    fetchHistoryMedia: (companyId: string, messageId: string) =>
      command<HistoryMediaReply>(companyId, 'history-media', { messageId }),
    /** A status (story): a text with background and font, or an image or video, to these contacts or every contact of the history. */
    postStatus: (companyId: string, request: StatusPostRequest) => command<StatusPostReply>(companyId, 'status-post', request),
    /** Schedules a send (`send` or `poll-send`, its request with `sendAt`) from any replica, whether or not the company is connected. */
    schedule: (companyId: string, command: SchedulableCommand, request: (SendRequest | PollSendRequest) & { sendAt: string }) =>
      call<ScheduledReply>(subjects.scheduled(companyId, 'create'), { command, request }),
    /** The company's scheduled messages, by due time. */
    scheduled: (companyId: string, query: ScheduledListQuery = {}) =>
      call<ScheduledListReply>(subjects.scheduled(companyId, 'list'), query),
    /** One scheduled message, by its key or id. */
    scheduledMessage: (companyId: string, key: string) => call<ScheduledMessageReply>(subjects.scheduled(companyId, 'get'), { key }),
    /** Cancels a pending scheduled message, by its key or id. */
    cancelScheduled: (companyId: string, key: string) => call<ScheduledMessageReply>(subjects.scheduled(companyId, 'cancel'), { key }),
    quietHours: (companyId: string) => call<QuietHoursReply>(subjects.quietHours(companyId, 'get'), {}),
    /** The hours scheduled and campaign messages may go out, in the company's time zone. */
    setQuietHours: (companyId: string, hours: QuietHours) => call<QuietHoursReply>(subjects.quietHours(companyId, 'set'), hours),
    removeQuietHours: (companyId: string) => call<QuietHoursReply>(subjects.quietHours(companyId, 'delete'), {}),
    /** A campaign: one templated message to each recipient, paced within the company's budget. */
    createCampaign: (companyId: string, request: CampaignCreateRequest) =>
      call<CampaignReply>(subjects.campaigns(companyId, 'create'), request),
    campaigns: (companyId: string) => call<CampaignsReply>(subjects.campaigns(companyId, 'list'), {}),
    campaign: (companyId: string, id: string) => call<CampaignReply>(subjects.campaigns(companyId, 'get'), { id }),
    pauseCampaign: (companyId: string, id: string) => call<CampaignReply>(subjects.campaigns(companyId, 'pause'), { id }),
    resumeCampaign: (companyId: string, id: string) => call<CampaignReply>(subjects.campaigns(companyId, 'resume'), { id }),
    cancelCampaign: (companyId: string, id: string) => call<CampaignReply>(subjects.campaigns(companyId, 'cancel'), { id }),
    /** One CSV line per recipient: phone, status, message id, error and times. */
    campaignReport: (companyId: string, id: string, after?: number) =>
      call<CampaignReportReply>(subjects.campaigns(companyId, 'report'), { id, ...(after === undefined ? {} : { after }) }),
    /** A page of the message history, newest first (any replica answers). */
    messages: (companyId: string, query: MessagesQuery = {}) => call<MessagesPage>(subjects.messages(companyId, 'list'), query),
    /** One message and its delivery state. */
    message: (companyId: string, messageId: string) => call<MessageReply>(subjects.messages(companyId, 'get'), { messageId }),
    /**
     * Puts a file in the media bucket for `send` to name by `objectId` (a NATS message holds 1 MB; the
     * bucket takes any size, in chunks). Returns the objectId.
     */
    putMedia: async (
      companyId: string, data: Uint8Array | ReadableStream<Uint8Array>, objectId = randomBytes(16).toString('base64url')
    ) => {
      const meta = { name: mediaObjectName(companyId, objectId) }
      const store = await mediaStore()
      if (data instanceof Uint8Array) await store.putBlob(meta, data)
      else await store.put(meta, data)
      return objectId
    },
    /** A file from the media bucket (a received one, by the `objectId` of its `message` event), or null. */
    getMedia: async (companyId: string, objectId: string): Promise<ReadableStream<Uint8Array> | null> => {
      const result = await (await mediaStore()).get(mediaObjectName(companyId, objectId))
      return result?.data ?? null
    }
  }
}

export type GatewayClient = ReturnType<typeof createGatewayClient>
