import { defineSettings, inNamespace, type Env, flag, integerIn, milliseconds, token, type ValuesOf } from '../../core/settings.ts'

const UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `7d`, `12h`, `30m`, `45s` or milliseconds. */
const duration = (raw: string): number | undefined => {
  const match = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(raw.trim())
  if (!match) return undefined
  const ms = Number(match[1]) * UNITS_MS[match[2] ?? 'ms']
  return ms >= 60_000 && ms <= 365 * 86_400_000 ? ms : undefined
}

/** The media plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  mediaBucket: {
    env: 'MEDIA_BUCKET',
    describe: 'NATS Object Store bucket of media files: received ones, and files clients put there to send by `objectId`',
    expected: 'a bucket name of [A-Za-z0-9_-]',
    fallback: (env: Env) => inNamespace(env, 'media'),
    parse: token
  },
  mediaRetentionMs: {
    env: 'MEDIA_RETENTION',
    describe: 'How long a file stays in the media bucket',
    expected: 'a duration from 1m to 365d: 7d, 12h, 30m or milliseconds',
    fallback: () => 7 * 86_400_000,
    parse: duration
  },
  mediaMaxBytes: {
    env: 'MEDIA_MAX_BYTES',
    describe: 'Largest file the gateway sends or takes (WhatsApp\'s own limit per kind applies too)',
    expected: 'bytes, an integer from 1024 to 2147483648',
    fallback: () => 64 * 1024 * 1024,
    parse: integerIn(1024, 2 ** 31)
  },
  mediaUrlAllowPrivate: {
    env: 'MEDIA_URL_ALLOW_PRIVATE',
    describe: 'Let a media `url` reach loopback, private, link-local and metadata addresses (tests, a trusted network)',
    expected: '1 | 0 | true | false',
    fallback: () => false,
    parse: flag
  },
  mediaConnectTimeoutMs: {
    env: 'MEDIA_CONNECT_TIMEOUT_MS',
    describe: 'How long fetching a media `url` may take to connect',
    expected: 'milliseconds, a positive integer',
    fallback: () => 5_000,
    parse: milliseconds
  },
  mediaFetchTimeoutMs: {
    env: 'MEDIA_FETCH_TIMEOUT_MS',
    describe: 'How long fetching a media `url` may take in all',
    expected: 'milliseconds, a positive integer',
    fallback: () => 60_000,
    parse: milliseconds
  },
  ffmpegPath: {
    env: 'FFMPEG_PATH',
    describe: 'ffmpeg, to convert voice notes to ogg/opus (without it, such a voice note is refused)',
    expected: 'a command name or path',
    fallback: () => 'ffmpeg',
    parse: (raw: string) => (raw.length > 0 ? raw : undefined)
  }
})

export type MediaOptions = ValuesOf<typeof settings>
