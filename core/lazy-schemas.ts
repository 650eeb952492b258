import type { FastifyServerOptions } from 'fastify'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { Static, TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import type { ValidationIssue } from './errors.ts'

/** A function built the first time it is called, then called directly. */
function builtOnFirstUse<Args extends unknown[], Result> (build: () => (...args: Args) => Result): (...args: Args) => Result {
  let built: ((...args: Args) => Result) | undefined
  return (...args) => (built ??= build())(...args)
}

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
  buildValidator: (() => (routeSchema: Parameters<typeof TypeBoxValidatorCompiler>[0]) =>
    builtOnFirstUse(() => TypeBoxValidatorCompiler(routeSchema))) as unknown as Compilers['buildValidator'],
  buildSerializer: (externalSchemas, options) => {
    const compile = SerializerSelector()(externalSchemas, options)
    return (routeSchema) => builtOnFirstUse(() => compile(routeSchema))
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
