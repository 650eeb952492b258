import type { PluginModule } from '../core/plugin-set.ts'
import { loadConfig, type Config } from '../core/config.ts'
import type { Env } from '../core/settings.ts'
import * as phone from './phone/index.ts'
import * as ownership from './ownership/index.ts'
import * as sessionPool from './session-pool/index.ts'
import * as rateLimit from './rate-limit/index.ts'
import * as reactions from './reactions/index.ts'
import * as metrics from './metrics/index.ts'
import * as media from './media/index.ts'
import * as conversations from './conversations/index.ts'
import * as webhooks from './webhooks/index.ts'
import * as dashboard from './dashboard/index.ts'
import * as groups from './groups/index.ts'
import * as polls from './polls/index.ts'
import * as calls from './calls/index.ts'
import * as profiles from './profiles/index.ts'
import * as chats from './chats/index.ts'
import * as status from './status/index.ts'
import * as history from './history/index.ts'
import * as proxy from './proxy/index.ts'
import * as scheduler from './scheduler/index.ts'
import * as campaigns from './campaigns/index.ts'

/**
 * The composition root: every plugin of the gateway. The core orders them by their declared
 * dependencies, skips disabled ones and hands each its own settings.
 */
export const plugins: PluginModule[] = [
  phone, proxy, media, conversations, ownership, sessionPool, groups, polls, calls, profiles, chats, status, history, scheduler,
  rateLimit, campaigns, reactions, metrics, webhooks, dashboard
]

/** The whole configuration of this composition: the core's settings and every plugin's. */
export type GatewayConfig = Config & phone.PhoneOptions & media.MediaOptions & conversations.ConversationsOptions &
  webhooks.WebhooksOptions & ownership.OwnershipOptions & sessionPool.SessionPoolOptions &
  rateLimit.RateLimitOptions & reactions.ReactionsOptions & metrics.MetricsOptions &
  profiles.ProfilesOptions & calls.CallsOptions & proxy.ProxyOptions & scheduler.SchedulerOptions

/** Reads and validates the environment for this composition (tests and tools call it with their own env). */
export function loadGatewayConfig (env: Env = process.env): GatewayConfig {
  return loadConfig(env, plugins) as GatewayConfig
}
