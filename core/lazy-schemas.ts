import { createRequire } from 'node:module'
import type { FastifyServerOptions } from 'fastify'
import type { TypeBoxValidatorCompiler as ValidatorCompiler } from '@fastify/type-provider-typebox'
import type { SerializerSelector as Selector } from '@fastify/fast-json-stringify-compiler'
import type { Static, TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import type { ValidationIssue } from './errors.ts'

/** A function built the first time it is called, then called directly. */
function builtOnFirstUse<Args extends unknown[], Result> (build: () => (...args: Args) => Result): (...args: Args) => Result {
  let built: ((...args: Args) => Result) | undefined
  return (...args) => (built ??= build())(...args)
}

/**
 * The compilers themselves are required at the first route compiled, not imported: TypeBox's Fastify
 * provider brings Ajv with ajv-formats, fast-json-stringify brings its own Ajv, fast-uri and schema
 * resolver, about 2 MB of an idle process that compiles no route. Required, since a route's first
 * request builds its validator synchronously.
 */
const require = createRequire(import.meta.url)
let validatorCompiler: typeof ValidatorCompiler | undefined
const typeBoxValidatorCompiler: typeof ValidatorCompiler = (schema) => (validatorCompiler ??=
  (require('@fastify/type-provider-typebox') as { TypeBoxValidatorCompiler: typeof ValidatorCompiler }).TypeBoxValidatorCompiler)(schema)
const serializerSelector = () =>
  (require('@fastify/fast-json-stringify-compiler') as { SerializerSelector: typeof Selector }).SerializerSelector

type Compilers = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>

/**
 * Each route's validators (TypeBox) and response serializers (fast-json-stringify) are compiled at its
 * first request instead of at start. A replica declares some 150 routes and most are never called on
 * it: compiling them all at start held about 9 MB of an idle process (generated code and its
 * bytecode). The first request of a route pays a few milliseconds; an invalid schema still fails
 * the tests, which call every route (test/openapi.test.ts).
 */
export const lazyCompilers: Compilers = {
  // Fastify's type for this factory is Ajv's; any function from a route's schema to a validator is taken at run time.
  buildValidator: (() => (routeSchema: Parameters<typeof ValidatorCompiler>[0]) =>
    builtOnFirstUse(() => typeBoxValidatorCompiler(routeSchema))) as unknown as Compilers['buildValidator'],
  buildSerializer: (externalSchemas, options) => {
    let compile: ReturnType<ReturnType<typeof Selector>> | undefined
    return (routeSchema) => builtOnFirstUse(() => (compile ??= serializerSelector()()(externalSchemas, options))(routeSchema))
  }
}

/** A payload check as `assertValid` takes it. */
export interface PayloadCheck<T> {
  Check: (value: unknown) => value is T
  Errors: (value: unknown) => Iterable<ValidationIssue>
}

/**
 * A TypeBox check compiled at its first payload: the NATS subjects and holder commands declare some
 * 100 schemas, most of which a replica never receives (the same reason as the routes' above).
 */
export function checkOnFirstUse<T extends TSchema> (schema: T): PayloadCheck<Static<T>> {
  let compiled: ReturnType<typeof Compile<T>> | undefined
  const check = () => (compiled ??= Compile(schema))
  return {
    Check: (value): value is Static<T> => check().Check(value),
    Errors: (value) => check().Errors(value) as Iterable<ValidationIssue>
  }
}
