import type { Scope } from './access.ts'

/*
 * The scope each operation needs, whichever way it comes: over HTTP, where the route's access config
 * takes it from here, and over NATS, where the server is the judge: a tenant's account imports only
 * the subjects its scopes allow (deploy/nats/tenants.ts). One table, so the two cannot disagree.
 */

/** `<namespace>.cmd.<companyId>.<name>`, answered by the company's holder. */
export const COMMAND_SCOPES = {
  send: 'send',
  react: 'send',
  read: 'send',
  presence: 'send',
  'check-numbers': 'send',
  edit: 'send',
  delete: 'send',
  status: 'read',
  owner: 'read',
  logout: 'link',
  // What `initialize` on any replica asks of the holder: show (or restart) the linking.
  initialize: 'link',
  // Groups: reading them is `read`; changing them, like writing in them, is `send`.
  'groups-list': 'read',
  'group-get': 'read',
  'group-invite-info': 'read',
  'group-join-requests': 'read',
  'group-create': 'send',
  'group-participants': 'send',
  'group-update': 'send',
  'group-picture': 'send',
  'group-invite': 'send',
  'group-revoke-invite': 'send',
  'group-join': 'send',
  'group-decide-join-requests': 'send',
  'group-leave': 'send',
  'poll-send': 'send',
  // Profiles and blocking: reading them is `read`; changing them is `send`.
  'profile-get': 'read',
  'contact-profile': 'read',
  'contact-picture': 'read',
  'blocklist-get': 'read',
  'profile-update': 'send',
  'profile-picture': 'send',
  'profile-picture-remove': 'send',
  'blocklist-update': 'send',
  // Calls: declining one is an act of the number, like a send.
  'call-reject': 'send',
  // Chat state: changing it is `send` (the chat list is a control operation, below).
  'chat-update': 'send',
  'chat-delete': 'send',
  // Status posts (stories): posting one is `send`.
  'status-post': 'send',
  // History: asking the phone for older messages, or for a history message's file, reads what the events would carry.
  'history-request': 'events',
  'history-media': 'events'
} as const satisfies Record<string, Scope>
export type CommandName = keyof typeof COMMAND_SCOPES

/** `<namespace>.ctl.<companyId>.<operation>`, answered by any replica. */
export const CONTROL_SCOPES = {
  initialize: 'link',
  'auto-reactions.get': 'rules',
  'auto-reactions.set': 'rules',
  // Message content is what the events carry.
  'messages.list': 'events',
  'messages.get': 'events',
  // A tally names who voted what: what poll_vote events carry.
  'polls.get': 'events',
  'polls.list': 'events',
  // Calls: the record is a list like any; what the number does with calls is an automatic rule.
  'calls.list': 'read',
  'call-settings.get': 'rules',
  'call-settings.set': 'rules',
  // Each chat comes with its last message.
  'chats.list': 'events',
  // The history sync's progress: counts, no content.
  'history.status': 'read',
  // A company's proxy is how it connects, like linking it: setting it is `link`; reading it shows no password.
  'proxy.get': 'read',
  'proxy.set': 'link',
  'proxy.delete': 'link',
  'proxy.check': 'read',
  // Scheduling a send is sending; what is scheduled carries content, as the history does.
  'scheduled.create': 'send',
  'scheduled.cancel': 'send',
  'scheduled.list': 'events',
  'scheduled.get': 'events',
  // When the company may message customers is a rule of its own, like its automatic reactions.
  'quiet-hours.get': 'read',
  'quiet-hours.set': 'rules',
  'quiet-hours.delete': 'rules',
  // A campaign is many sends; its counts are read like a session's; its report names every recipient.
  'campaigns.create': 'send',
  'campaigns.pause': 'send',
  'campaigns.resume': 'send',
  'campaigns.cancel': 'send',
  'campaigns.list': 'read',
  'campaigns.get': 'read',
  'campaigns.report': 'events'
} as const satisfies Record<string, Scope>
export type ControlOperation = keyof typeof CONTROL_SCOPES

/** `<namespace>.phone.normalize`, answered by any replica: a lookup that names no company. */
export const PHONE_NORMALIZE_SCOPE = 'read' satisfies Scope

/** Events that let whoever sees them link the company's WhatsApp (a QR, a pairing code): only for `link`. */
export const LINKING_EVENTS: ReadonlySet<string> = new Set(['qr', 'pairing_code'])
