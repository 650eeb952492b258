import pino, { type Logger } from 'pino'
import type { Config } from './config.ts'
import { privateLogOptions } from './log-privacy.ts'

/** The logger used outside Fastify (start-up, embedded services, CLI tools); same fields as the app's. */
export function createLogger (config: Pick<Config, 'logLevel' | 'replicaId'>): Logger {
  return pino({ level: config.logLevel, base: { replica: config.replicaId }, ...privateLogOptions })
}
