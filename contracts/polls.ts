import { Type, type Static } from 'typebox'

// The polls area's requests, replies and event data, shared by HTTP, NATS and the typed client.
export const PollsNoFields = Type.Object({})
export type PollsNoFields = Static<typeof PollsNoFields>
