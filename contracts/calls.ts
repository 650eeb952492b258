import { Type, type Static } from 'typebox'

// The calls area's requests, replies and event data, shared by HTTP, NATS and the typed client.
export const CallsNoFields = Type.Object({})
export type CallsNoFields = Static<typeof CallsNoFields>
