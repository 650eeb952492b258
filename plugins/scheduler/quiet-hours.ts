import { ErrorCode, type QuietHours } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

const MINUTE_MS = 60_000
const DAY_MINUTES = 24 * 60
/** A daylight-saving change moves local time by at most this much; past it a scan finds the next allowed minute. */
const SCAN_LIMIT_MINUTES = 3 * 60

/** The hours a company may message customers, as minutes of its local day; `to` before `from` spans midnight. */
export interface AllowedHours {
  timezone: string
  from: number
  to: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatterOf (timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone)
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-GB', { timeZone: timezone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
    formatters.set(timezone, formatter)
  }
  return formatter
}

const minutesOf = (clock: string) => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5))
const clockOf = (minutes: number) => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`

/** Checks the time zone and that the window is not empty; the schema has checked the clock times' shape. */
export function allowedHoursOf (hours: QuietHours): AllowedHours {
  try {
    formatterOf(hours.timezone)
  } catch {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, `${hours.timezone} is not a time zone this gateway knows`, {
      details: [{ field: '/timezone', message: 'an IANA time zone, e.g. Europe/Moscow' }]
    })
  }
  const from = minutesOf(hours.from)
  const to = minutesOf(hours.to)
  if (from === to) {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'from and to are the same minute: the window would be empty (or the whole day)', {
      details: [{ field: '/to', message: 'differs from `from`; to allow any time, delete the quiet hours' }]
    })
  }
  return { timezone: hours.timezone, from, to }
}

export function quietHoursOf (allowed: AllowedHours): QuietHours {
  return { timezone: allowed.timezone, from: clockOf(allowed.from), to: clockOf(allowed.to) }
}

/** The minute of the local day `at` falls in. */
function localMinute (allowed: AllowedHours, at: number): number {
  const parts = formatterOf(allowed.timezone).formatToParts(at)
  const hour = Number(parts.find((part) => part.type === 'hour')?.value)
  const minute = Number(parts.find((part) => part.type === 'minute')?.value)
  return hour * 60 + minute
}

export function isAllowed (allowed: AllowedHours, at: number): boolean {
  const minute = localMinute(allowed, at)
  return allowed.from < allowed.to ? minute >= allowed.from && minute < allowed.to : minute >= allowed.from || minute < allowed.to
}

/**
 * The first time at or after `at` that the company may message customers: `at` itself when allowed,
 * else the start of the next allowed minute (the window's first minute, found across a daylight-saving change).
 */
export function nextAllowed (allowed: AllowedHours, at: number): number {
  if (isAllowed(allowed, at)) return at
  const startOfMinute = at - (at % MINUTE_MS)
  const ahead = (allowed.from - localMinute(allowed, at) + DAY_MINUTES) % DAY_MINUTES
  const jumped = startOfMinute + ahead * MINUTE_MS
  if (isAllowed(allowed, jumped) && !isAllowed(allowed, jumped - MINUTE_MS)) return jumped
  // A clock change between now and then: look minute by minute around the jump.
  for (let step = -SCAN_LIMIT_MINUTES; step <= SCAN_LIMIT_MINUTES; step++) {
    const candidate = jumped + step * MINUTE_MS
    if (candidate > at && isAllowed(allowed, candidate)) return candidate
  }
  return jumped
}
