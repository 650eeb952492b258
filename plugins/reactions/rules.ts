import { defineEntity, p } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { EntityManager } from '@mikro-orm/core'
import { DEFAULT_GRATITUDE, DEFAULT_NOT_GRATITUDE } from './gratitude.ts'

/** The old worker's reaction to thanks. */
export const DEFAULT_THANKS_EMOJI = '❤️'

/** A company's auto-reaction rule; null lists mean the defaults. Off unless the company opts in. */
export const AutoReactionRuleSchema = defineEntity({
  name: 'AutoReactionRule',
  tableName: 'auto_reaction_rules',
  properties: {
    companyId: p.string().primary(),
    enabled: p.boolean(),
    emoji: p.string(),
    patterns: p.json<string[]>().nullable(),
    exclusions: p.json<string[]>().nullable(),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date())
  }
})
export class AutoReactionRule extends AutoReactionRuleSchema.class {}
AutoReactionRuleSchema.setClass(AutoReactionRule)

export class CreateAutoReactionRules extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists auto_reaction_rules (
      company_id varchar(64) primary key,
      enabled boolean not null,
      emoji varchar(64) not null,
      patterns jsonb,
      exclusions jsonb,
      updated_at timestamptz not null default now()
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists auto_reaction_rules')
  }
}

export const ruleMigrations = [{ name: 'reactions_001_auto_reaction_rules', class: CreateAutoReactionRules }]

export interface EffectiveRules {
  enabled: boolean
  emoji: string
  patterns: string[]
  exclusions: string[]
}

export async function rulesOf (em: EntityManager, companyId: string): Promise<EffectiveRules> {
  const row = await em.findOne(AutoReactionRule, { companyId })
  return {
    enabled: row?.enabled ?? false,
    emoji: row?.emoji ?? DEFAULT_THANKS_EMOJI,
    patterns: row?.patterns ?? DEFAULT_GRATITUDE,
    exclusions: row?.exclusions ?? DEFAULT_NOT_GRATITUDE
  }
}

export async function saveRules (
  em: EntityManager,
  companyId: string,
  rules: { enabled: boolean, emoji?: string, patterns?: string[], exclusions?: string[] }
): Promise<void> {
  await em.upsert(AutoReactionRule, {
    companyId,
    enabled: rules.enabled,
    emoji: rules.emoji ?? DEFAULT_THANKS_EMOJI,
    patterns: rules.patterns ?? null,
    exclusions: rules.exclusions ?? null,
    updatedAt: new Date()
  })
}
