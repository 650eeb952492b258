/**
 * Every NATS subject the gateway serves or publishes. Dispatch is by token:
 * `wa.<area>.<...>`, so a subscriber can take a whole area with `wa.<area>.>`.
 */
export const Subjects = {
  phoneNormalize: 'wa.phone.normalize',
  /** A command for the replica holding the company's connection (no queue group: only the holder subscribes). */
  command: (companyId: string, command: string) => `wa.cmd.${companyId}.${command}`,
  /** Every command subject of one company, as the holder subscribes to them. */
  commandsOf: (companyId: string) => `wa.cmd.${companyId}.>`,
  /** An event about one company. */
  event: (companyId: string, type: string) => `wa.evt.${companyId}.${type}`,
  /** Any replica answers (queue group): the sessions with their holder and status. */
  sessionsList: 'wa.ctl.sessions.list',
  /** Any replica answers (queue group): mark the company online and wait for its QR or connection. */
  initialize: (companyId: string) => `wa.ctl.${companyId}.initialize`,
  /** Any replica answers (queue group): read or replace a company's auto-reaction rules. */
  autoReactionRules: (companyId: string, operation: 'get' | 'set') => `wa.ctl.${companyId}.auto-reactions.${operation}`,
  /** Published when a company's desired state changes, so every replica follows it. */
  desiredChanged: 'wa.ctl.desired.changed'
} as const

/** Queue group shared by every replica for subjects any replica may answer. */
export const ANY_REPLICA_QUEUE = 'wa-gateway'

/** Headers the holder puts on what it publishes. */
export const Headers = {
  epoch: 'Wa-Epoch',
  replica: 'Wa-Replica'
} as const
