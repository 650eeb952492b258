/** WhatsApp stamps messages in seconds since the epoch; events and replies carry ISO 8601. */
export function isoFromSeconds (seconds: number): string {
  return new Date(seconds * 1000).toISOString()
}
