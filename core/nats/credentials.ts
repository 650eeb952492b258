import { readFile } from 'node:fs/promises'
import {
  credsAuthenticator, nkeyAuthenticator, tokenAuthenticator, usernamePasswordAuthenticator, type Authenticator, type TlsOptions
} from '@nats-io/nats-core'
import type { Config } from '../config.ts'

export interface NatsCredentials {
  authenticator?: Authenticator
  tls?: TlsOptions
  inboxPrefix?: string
  /** Whether the connection proves who it is (credentials or a client certificate). */
  authenticated: boolean
}

/**
 * The connection options that say who the gateway is to NATS. nats.js keeps only host and port from
 * a `user:pass@host` URL, so credentials come from their own settings.
 */
export async function natsCredentials (config: Config): Promise<NatsCredentials> {
  const authenticator = await authenticatorOf(config)
  const tlsWanted = config.natsTlsCaFile !== undefined || config.natsTlsCertFile !== undefined
  const tls: TlsOptions | undefined = tlsWanted
    ? { caFile: config.natsTlsCaFile, certFile: config.natsTlsCertFile, keyFile: config.natsTlsKeyFile }
    : undefined
  return {
    ...(authenticator ? { authenticator } : {}),
    ...(tls ? { tls } : {}),
    ...(config.natsInboxPrefix ? { inboxPrefix: config.natsInboxPrefix } : {}),
    authenticated: authenticator !== undefined || config.natsTlsCertFile !== undefined
  }
}

/** The first of the credential settings that is set, in the order README lists them. */
async function authenticatorOf (config: Config): Promise<Authenticator | undefined> {
  if (config.natsCredsFile) return credsAuthenticator(await readFile(config.natsCredsFile))
  if (config.natsNkeySeedFile) {
    const seed = (await readFile(config.natsNkeySeedFile, 'utf8')).trim()
    return nkeyAuthenticator(new TextEncoder().encode(seed))
  }
  if (config.natsUser) return usernamePasswordAuthenticator(config.natsUser, config.natsPassword ?? '')
  if (config.natsToken) return tokenAuthenticator(config.natsToken)
  return undefined
}
