/**
 * Every NATS subject the gateway serves or publishes. Dispatch is by token:
 * `wa.<area>.<...>`, so a subscriber can take a whole area with `wa.<area>.>`.
 */
export const Subjects = {
  phoneNormalize: 'wa.phone.normalize'
} as const

/** Queue group shared by every replica for subjects any replica may answer. */
export const ANY_REPLICA_QUEUE = 'wa-gateway'
