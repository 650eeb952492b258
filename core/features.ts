import type { FastifyPluginAsync, FastifyPluginCallback } from 'fastify'
import type { EntitySchema, MigrationObject } from '@mikro-orm/core'

/** What `plugins/<name>/index.ts` exports: the fastify-plugin as default, plus its tables. */
export interface FeatureModule {
  default: FastifyPluginAsync<any> | FastifyPluginCallback<any>
  entities?: EntitySchema<any, any>[]
  migrations?: MigrationObject[]
}

export interface Feature {
  name: string
  dependencies: string[]
  module: FeatureModule
}

/** The plugins the core itself registers; features may depend on them. */
export const CORE_PLUGINS = ['config', 'errors', 'docs', 'health', 'nats', 'db', 'bus']

function metaOf (module: FeatureModule): { name?: string, dependencies?: string[] } {
  return (module.default as unknown as Record<symbol, { name?: string, dependencies?: string[] }>)[Symbol.for('plugin-meta')] ?? {}
}

/** Thrown when the set of feature plugins cannot be loaded as configured. */
export class FeatureError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'FeatureError'
  }
}

/**
 * Keeps the enabled features and orders them so each comes after what it depends on.
 * Fails with a message naming the plugin when a dependency is disabled, unknown, or circular.
 */
export function resolveFeatures (modules: FeatureModule[], disabled: string[]): Feature[] {
  const all = modules.map((module) => {
    const meta = metaOf(module)
    if (!meta.name) throw new FeatureError('a feature plugin has no name: wrap it with fastify-plugin and give it { name }')
    return { name: meta.name, dependencies: meta.dependencies ?? [], module }
  })
  const known = new Map(all.map((feature) => [feature.name, feature]))
  for (const name of disabled) {
    if (!known.has(name)) throw new FeatureError(`DISABLED_PLUGINS names an unknown plugin "${name}" (known: ${[...known.keys()].join(', ')})`)
  }
  const enabled = all.filter((feature) => !disabled.includes(feature.name))
  for (const feature of enabled) {
    for (const dependency of feature.dependencies) {
      if (CORE_PLUGINS.includes(dependency)) continue
      if (disabled.includes(dependency)) {
        throw new FeatureError(`plugin "${feature.name}" needs plugin "${dependency}", which DISABLED_PLUGINS switches off; enable it or disable "${feature.name}" too`)
      }
      if (!known.has(dependency)) throw new FeatureError(`plugin "${feature.name}" needs "${dependency}", which is not a known plugin`)
    }
  }

  const ordered: Feature[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (feature: Feature, path: string[]) => {
    if (state.get(feature.name) === 'done') return
    if (state.get(feature.name) === 'visiting') throw new FeatureError(`plugins depend on each other in a circle: ${[...path, feature.name].join(' -> ')}`)
    state.set(feature.name, 'visiting')
    for (const dependency of feature.dependencies) {
      const target = known.get(dependency)
      if (target) visit(target, [...path, feature.name])
    }
    state.set(feature.name, 'done')
    ordered.push(feature)
  }
  for (const feature of enabled) visit(feature, [])
  return ordered
}
