// How the dashboard words things: pure functions, no DOM.

/** A phone as `+7900***4567`: its first and last four digits, the rule the gateway's logs mask phones by. */
export function maskPhone (phoneOrJid) {
  if (!phoneOrJid) return '—'
  const digits = String(phoneOrJid).split('@')[0].split(':')[0].replace(/\D/g, '')
  if (digits.length <= 8) return `+${'*'.repeat(Math.max(0, digits.length - 2))}${digits.slice(-2)}`
  return `+${digits.slice(0, 4)}***${digits.slice(-4)}`
}

/** "12 s ago", "5 min ago", "3 h ago", "2 d ago"; "—" for nothing. */
export function ago (iso, now = Date.now()) {
  if (!iso) return '—'
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (seconds < 60) return `${seconds} s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`
  return `${Math.floor(seconds / 86_400)} d ago`
}

/** Seconds until `iso`, never below 0. */
export function secondsUntil (iso, now = Date.now()) {
  return Math.max(0, Math.ceil((Date.parse(iso) - now) / 1000))
}

/** A session's state in words and a tone for its badge: ok, wait, bad or off. */
export function stateOf (session) {
  if (session.connected) return { label: 'Connected', tone: 'ok' }
  switch (session.status) {
    case 'qr': return { label: 'Waiting for QR scan', tone: 'wait' }
    case 'pairing': return { label: 'Waiting for pairing code', tone: 'wait' }
    case 'connecting': return { label: 'Connecting', tone: 'wait' }
    case 'reconnecting': return { label: 'Reconnecting', tone: 'wait' }
    case 'breaker_open': return { label: 'Paused after failures', tone: 'bad' }
    case 'stopped': return { label: 'Stopped', tone: 'bad' }
    case 'new': return { label: 'Not linked yet', tone: 'off' }
    case 'unknown': return { label: 'Holder not answering', tone: 'bad' }
  }
  return session.desired === 'offline' ? { label: 'Offline', tone: 'off' } : { label: 'Disconnected', tone: 'bad' }
}

/** Which filter a state belongs to. */
export function stateGroup (session) {
  const { tone } = stateOf(session)
  return tone === 'ok' ? 'connected' : tone === 'wait' ? 'linking' : tone === 'off' ? 'offline' : 'problem'
}

/** A last error as one line: its reason, WhatsApp's code, and when. */
export function problemText (problem, now = Date.now()) {
  if (!problem) return '—'
  return `${problem.reason.replaceAll('_', ' ')}${problem.code === null ? '' : ` (${problem.code})`}, ${ago(problem.at, now)}`
}

/** One line for an event in the live feed. */
export function describeEvent (event) {
  const data = event.data ?? {}
  switch (event.type) {
    case 'message': {
      const from = data.pushName ? `${data.pushName} (${maskPhone(data.phone)})` : maskPhone(data.phone ?? data.lid)
      const content = data.text ?? (data.media ? `[${data.media.kind}]` : data.location ? '[location]' : data.contact ? '[contact]' : '')
      return `${from}${data.groupId ? ` in ${data.groupId}` : ''}: ${content}`
    }
    case 'message_sent': return `sent to ${maskPhone(data.phone)}: ${data.text ?? `[${data.kind}]`}`
    case 'message_status': return `message ${data.messageId} is ${data.status ?? data.state}`
    case 'reaction':
      return `${maskPhone(data.phone)} reacted ${data.emoji || '(removed)'} to ${data.messageId ?? data.reactedTo ?? 'a message'}`
    case 'connected': return `connected as ${maskPhone(data.phoneNumber)}`
    case 'disconnected': return `disconnected${data.code ? ` (${data.code})` : ''}`
    case 'qr': return 'a new QR code'
    case 'pairing_code': return 'a pairing code'
    case 'owner_changed': return `now held by ${data.holder ?? 'nobody'} (${data.reason})`
    case 'error': return `error: ${String(data.reason ?? data.message ?? '').replaceAll('_', ' ')}`
    case 'group_joined': return `joined the group ${data.subject ? `"${data.subject}" ` : ''}(${data.groupId})`
    case 'group_left': return `left the group ${data.groupId}`
    case 'group_update': {
      const changed = Object.keys(data).filter((field) => field !== 'groupId' && field !== 'author')
      return data.subject !== undefined
        ? `the group ${data.groupId} is now "${data.subject}"`
        : `the group ${data.groupId} changed: ${changed.join(', ') || 'settings'}`
    }
    case 'poll_vote': {
      const who = maskPhone(data.phone ?? data.lid)
      const picked = data.selectedOptions?.length ? `voted ${data.selectedOptions.join(', ')}` : 'withdrew their vote'
      return `${who} ${picked} on poll ${data.pollMessageId}${data.groupId ? ` in ${data.groupId}` : ''}`
    }
    case 'group_participants': {
      const who = (data.participants ?? []).map((member) => maskPhone(member.phone ?? member.lid ?? member.jid)).join(', ')
      return `${String(data.action).replaceAll('_', ' ')} in ${data.groupId}: ${who}`
    }
    case 'call': {
      const kind = `${data.video ? 'video' : 'voice'} call${data.groupId ? ' (group)' : ''}`
      const from = maskPhone(data.phone ?? data.lid ?? data.from)
      if (data.rejectedBy) return `declined the ${kind} from ${from} (${data.rejectedBy === 'auto' ? 'automatically' : 'through the API'})`
      const ended = { ringing: 'ringing', accept: 'answered', reject: 'declined', timeout: 'missed', terminate: 'ended' }[data.status]
      if (data.status !== 'offer') return `${kind} from ${from}: ${ended ?? data.status}`
      return `${kind} from ${from}${data.offline ? ' (while offline)' : ''}`
    }
    case 'message_scheduled': return `a message to ${chatName(data.phone)} scheduled for ${clockTime(data.dueAt)}`
    case 'message_expired': return `the message scheduled to ${chatName(data.phone)} expired unsent`
    case 'message_failed': return `the message scheduled to ${chatName(data.phone)} failed: ${data.error?.message ?? ''}`
    case 'campaign_progress': {
      const counts = data.counts ?? {}
      const done = (counts.sent ?? 0) + (counts.failed ?? 0) + (counts.skipped ?? 0)
      const why = data.pausedReason ? ` (${data.pausedReason.replaceAll('_', ' ')})` : ''
      return `campaign "${data.name}" ${data.status}${why}: ${done} of ${data.total}`
    }
  }
  return JSON.stringify(data).slice(0, 120)
}

/** "in 12 s", "in 5 min", "3 h ago": how far `iso` is from now, either way. */
export function fromNow (iso, now = Date.now()) {
  if (!iso) return '—'
  const seconds = Math.round((Date.parse(iso) - now) / 1000)
  if (seconds <= 0) return ago(iso, now)
  if (seconds < 60) return `in ${seconds} s`
  if (seconds < 3600) return `in ${Math.round(seconds / 60)} min`
  if (seconds < 86_400) return `in ${Math.round(seconds / 3600)} h`
  return `in ${Math.round(seconds / 86_400)} d`
}

/** A time as the reader's clock shows it: "Dec 7, 15:00". */
export function clockTime (iso) {
  if (!iso) return '—'
  return new Date(iso).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })
}

/** A chat as a line shows it: a group's JID as it is, a phone masked. */
export function chatName (phoneOrJid) {
  return String(phoneOrJid ?? '').endsWith('@g.us') ? phoneOrJid : maskPhone(phoneOrJid)
}
