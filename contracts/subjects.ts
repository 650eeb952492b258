import { isCompanyId } from './common.ts'

/**
 * Every NATS subject the gateway serves or publishes. Dispatch is by token:
 * `<namespace>.<area>.<...>`, so a subscriber can take a whole area with `<namespace>.<area>.>`.
 */

/** The namespace of the default deployment. */
export const DEFAULT_NAMESPACE = 'wa'

/**
 * Every subject of one deployment. Deployments sharing a NATS account (staging beside production,
 * parallel test runs) each take a namespace of their own, so none answers another's requests.
 */
export function subjectsFor (namespace: string = DEFAULT_NAMESPACE) {
  return {
    phoneNormalize: `${namespace}.phone.normalize`,
    /** A command for the replica holding the company's connection (no queue group: only the holder subscribes). */
    command: (companyId: string, command: string) => `${namespace}.cmd.${companyId}.${command}`,
    /** Every command subject of one company, as the holder subscribes to them. */
    commandsOf: (companyId: string) => `${namespace}.cmd.${companyId}.>`,
    /** An event about one company. */
    event: (companyId: string, type: string) => `${namespace}.evt.${companyId}.${type}`,
    /** Any replica answers (queue group): the sessions with their holder and status. */
    sessionsList: `${namespace}.sys.sessions.list`,
    /** Any replica answers (queue group): mark the company online and wait for its QR or connection. */
    initialize: (companyId: string) => `${namespace}.ctl.${companyId}.initialize`,
    /** Any replica answers (queue group): read or replace a company's auto-reaction rules. */
    autoReactionRules: (companyId: string, operation: 'get' | 'set') => `${namespace}.ctl.${companyId}.auto-reactions.${operation}`,
    /** Any replica answers (queue group): a page of the company's message history, or one message and its state. */
    messages: (companyId: string, operation: 'list' | 'get') => `${namespace}.ctl.${companyId}.messages.${operation}`,
    /** Any replica answers (queue group): one poll's tally, or the company's latest polls with theirs. */
    polls: (companyId: string, operation: 'get' | 'list') => `${namespace}.ctl.${companyId}.polls.${operation}`,
    /** Any replica answers (queue group): the calls a company received, or its call settings. */
    calls: (companyId: string, operation: 'calls.list' | 'call-settings.get' | 'call-settings.set') =>
      `${namespace}.ctl.${companyId}.${operation}`,
    /** Any replica answers (queue group): a page of the company's chats with their state and last message. */
    chats: (companyId: string) => `${namespace}.ctl.${companyId}.chats.list`,
    /** Any replica answers (queue group): the company's proxy, set, removed or checked. */
    proxy: (companyId: string, operation: 'get' | 'set' | 'delete' | 'check') => `${namespace}.ctl.${companyId}.proxy.${operation}`,
    /** Published when a company's proxy changes, so its holder reconnects through the new one. */
    proxyChanged: `${namespace}.sys.proxy.changed`,
    /** Any replica answers (queue group): how far the import of the phone's history is. */
    historyStatus: (companyId: string) => `${namespace}.ctl.${companyId}.history.status`,
    /** Any replica answers (queue group): schedule a send, list the company's scheduled messages, read or cancel one. */
    scheduled: (companyId: string, operation: 'create' | 'list' | 'get' | 'cancel') =>
      `${namespace}.ctl.${companyId}.scheduled.${operation}`,
    /** Any replica answers (queue group): the hours the company may message customers. */
    quietHours: (companyId: string, operation: 'get' | 'set' | 'delete') => `${namespace}.ctl.${companyId}.quiet-hours.${operation}`,
    /** Any replica answers (queue group): the company's campaigns. */
    campaigns: (companyId: string, operation: 'create' | 'list' | 'get' | 'pause' | 'resume' | 'cancel' | 'report') =>
      `${namespace}.ctl.${companyId}.campaigns.${operation}`,
    /** Published when a company's desired state changes, so every replica follows it. */
    desiredChanged: `${namespace}.sys.desired.changed`,
    /** Every replica answers (no queue group): its own metrics, for the cluster-wide JSON. */
    metricsCollect: `${namespace}.sys.metrics.collect`,
    /** Published when an API key is revoked, so every replica refuses it and closes its WebSockets. */
    keysRevoked: `${namespace}.sys.keys.revoked`,
    /** Every event of the deployment, as the events stream keeps them. */
    allEvents: `${namespace}.evt.>`
  } as const
}

export type SubjectSet = ReturnType<typeof subjectsFor>

/** The default deployment's subjects (`wa.…`). */
export const Subjects = subjectsFor()

/** Queue group shared by every replica for subjects any replica may answer. */
export const ANY_REPLICA_QUEUE = 'wa-gateway'

/**
 * Areas whose third token is a company id. Deployment-wide operations live in `<namespace>.sys.…`,
 * apart, so a tenant's `<namespace>.ctl.<companyId>.>` can never match one, whatever the company is called.
 */
const COMPANY_AREAS = new Set(['cmd', 'evt', 'ctl'])

/** The company a `<namespace>.{cmd|evt|ctl}.<companyId>.…` subject names, or undefined when it names none (or an invalid one). */
export function companyOfSubject (subject: string): string | undefined {
  const [, area, third] = subject.split('.')
  if (!COMPANY_AREAS.has(area) || !isCompanyId(third)) return undefined
  return third
}

/** A subject with its company written as `{companyId}`: how spans and logs group the same operation of every company. */
export function subjectPattern (subject: string): string {
  if (companyOfSubject(subject) === undefined) return subject
  const tokens = subject.split('.')
  tokens[2] = '{companyId}'
  return tokens.join('.')
}

/** Headers the holder puts on what it publishes (named apart from the Fetch API's global `Headers`). */
export const GatewayHeaders = {
  epoch: 'Wa-Epoch',
  replica: 'Wa-Replica'
} as const
