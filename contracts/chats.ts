import { Type, type Static } from 'typebox'

// The chats area's requests, replies and event data, shared by HTTP, NATS and the typed client.
export const ChatsNoFields = Type.Object({})
export type ChatsNoFields = Static<typeof ChatsNoFields>
