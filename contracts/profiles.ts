import { Type, type Static } from 'typebox'

// The profiles area's requests, replies and event data, shared by HTTP, NATS and the typed client.
export const ProfilesNoFields = Type.Object({})
export type ProfilesNoFields = Static<typeof ProfilesNoFields>
