import type { FastifyPluginAsync, FastifyPluginCallback } from 'fastify'
import type { EntitySchema, MigrationObject } from '@mikro-orm/core'
import type { SettingsTable } from './settings.ts'
import { ApiKeySchema, keyMigrations } from './access/keys.ts'

/**
 * What a plugin's public module (`plugins/<name>/index.ts`) exports: the fastify-plugin as default,
 * the settings it receives as options, and its tables.
 */
export interface PluginModule {
  default: FastifyPluginAsync<any> | FastifyPluginCallback<any>
  settings?: SettingsTable
  entities?: EntitySchema<any, any>[]
  migrations?: MigrationObject[]
}

export interface LoadablePlugin {
  name: string
  dependencies: string[]
  module: PluginModule
}

/** The plugins the core itself registers; the others may depend on them. */
export const CORE_PLUGINS = ['config', 'routes', 'errors', 'docs', 'health', 'nats', 'db', 'bus', 'access', 'events', 'sealing']

function metaOf (module: PluginModule): { name?: string, dependencies?: string[] } {
  return (module.default as unknown as Record<symbol, { name?: string, dependencies?: string[] }>)[Symbol.for('plugin-meta')] ?? {}
}

/** Thrown when the set of plugins cannot be loaded as configured. */
export class PluginSetError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PluginSetError'
  }
}

/**
 * Keeps the enabled plugins and orders them so each comes after what it depends on.
 * Fails with a message naming the plugin when a dependency is disabled, unknown, or circular.
 */
export function resolvePlugins (modules: PluginModule[], disabled: string[]): LoadablePlugin[] {
  const all = modules.map((module) => {
    const meta = metaOf(module)
    if (!meta.name) throw new PluginSetError('a plugin has no name: wrap it with fastify-plugin and give it { name }')
    return { name: meta.name, dependencies: meta.dependencies ?? [], module }
  })
  const known = new Map(all.map((plugin) => [plugin.name, plugin]))
  for (const name of disabled) {
    if (!known.has(name)) {
      throw new PluginSetError(`DISABLED_PLUGINS names an unknown plugin "${name}" (known: ${[...known.keys()].join(', ')})`)
    }
  }
  const enabled = all.filter((plugin) => !disabled.includes(plugin.name))
  for (const plugin of enabled) {
    for (const dependency of plugin.dependencies) {
      if (CORE_PLUGINS.includes(dependency)) continue
      if (disabled.includes(dependency)) {
        throw new PluginSetError(`plugin "${plugin.name}" needs plugin "${dependency}", which DISABLED_PLUGINS switches off;` +
          ` enable it or disable "${plugin.name}" too`)
      }
      if (!known.has(dependency)) throw new PluginSetError(`plugin "${plugin.name}" needs "${dependency}", which is not a known plugin`)
    }
  }

  const ordered: LoadablePlugin[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (plugin: LoadablePlugin, path: string[]) => {
    if (state.get(plugin.name) === 'done') return
    if (state.get(plugin.name) === 'visiting') {
      throw new PluginSetError(`plugins depend on each other in a circle: ${[...path, plugin.name].join(' -> ')}`)
    }
    state.set(plugin.name, 'visiting')
    for (const dependency of plugin.dependencies) {
      const target = known.get(dependency)
      if (target) visit(target, [...path, plugin.name])
    }
    state.set(plugin.name, 'done')
    ordered.push(plugin)
  }
  for (const plugin of enabled) visit(plugin, [])
  return ordered
}

/** The tables of the core and of the given plugins, as the database gets them: service, `npm run migrate` and tools alike. */
export function schemaOf (plugins: LoadablePlugin[]): { entities: EntitySchema<any, any>[], migrations: MigrationObject[] } {
  return {
    entities: [ApiKeySchema, ...plugins.flatMap((plugin) => plugin.module.entities ?? [])],
    migrations: [...keyMigrations, ...plugins.flatMap((plugin) => plugin.module.migrations ?? [])]
  }
}
