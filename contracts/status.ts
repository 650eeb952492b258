import { Type, type Static } from 'typebox'

// The status area's requests, replies and event data, shared by HTTP, NATS and the typed client.
export const StatusNoFields = Type.Object({})
export type StatusNoFields = Static<typeof StatusNoFields>
