import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { RetriedWrites } from '../../core/retried-writes.ts'
import { ErrorCode } from '../../contracts/index.ts'
import type { CommandLease } from '../ownership/index.ts'
import { derivedMessageId, failureOf, isAllowed, nextAllowed, retryDelayOf, type AllowedHours } from '../scheduler/index.ts'
import { render } from './recipients.ts'
import type { CampaignRow, CampaignStore, RecipientRow } from './store.ts'

/**
 * Recipients whose phones are checked for WhatsApp ahead of their turn: one check answers several sends, and
 * takes no more than that from NUMBER_CHECKS_PER_MINUTE at once (after a takeover the answers are asked again).
 */
const CHECK_AHEAD = 10
/** A lane sleeps in slices this long, so a pause, a cancel or a lost lease stops it within one. */
const SLICE_MS = 250
/** Attempts a recipient gets for passing failures (not connected, over budget, a timeout) before it is `failed`. */
const MAX_ATTEMPTS = 5
/** The auto-pause rates are judged once this many of the latest recipients are known (or the whole window, if smaller). */
const MIN_SAMPLES = 20
const MINUTE_MS = 60_000

type Outcome = 'ok' | 'failed' | 'absent'

export interface RunnerOptions {
  store: CampaignStore
  lookMs: number
  /** Whether this replica holds any company (else a look asks PostgreSQL nothing). */
  holdsAny: () => boolean
  /** The lease of a company this replica holds with an open connection; undefined for any other. */
  readyLease: (companyId: string) => CommandLease | undefined
  stillHeld: (companyId: string, epoch: number) => boolean
  /** Which of these phones are on WhatsApp (cached answers are free; NUMBER_CHECKS_PER_MINUTE bounds the rest). */
  onWhatsApp: (companyId: string, lease: CommandLease, phones: string[]) => Promise<Map<string, boolean>>
  typing: (companyId: string, lease: CommandLease, phone: string) => Promise<void>
  /** Sends a recipient's message under its WhatsApp id; its `message_sent` names the campaign and the recipient's place. */
  send: (
    companyId: string, lease: CommandLease, request: Record<string, unknown>,
    recipient: { campaignId: string, seq: number, messageId: string }
  ) => Promise<{ messageId: string }>
  allowedHours: (companyId: string) => Promise<AllowedHours | undefined>
  /** Publishes the campaign's progress; `force` on a change of state, else at most every few seconds. */
  progress: (campaign: CampaignRow, epoch: number, force: boolean) => Promise<void>
  log: FastifyBaseLogger
  random?: () => number
}

/** What a recipient's send is: the template's text (or the file with it as caption) with the recipient's variables in. */
export function requestOf (campaign: CampaignRow, recipient: RecipientRow): Record<string, unknown> {
  const text = campaign.template.text === null ? undefined : render(campaign.template.text, recipient.variables, recipient.phone)
  const { media } = campaign.template
  if (!media) return { phone: recipient.phone, message: text }
  return { phone: recipient.phone, media: { ...media, ...(text ? { caption: text } : {}) } }
}

/**
 * Sends the campaigns of the companies this replica holds: one lane per company, one recipient at a
 * time, spaced by the campaign's pace with jitter, within quiet hours. Each recipient is claimed
 * under the lease's epoch and sent under a WhatsApp id derived from the campaign and its place, so
 * a holder that dies mid-send leaves a recipient the next one sends again as the same message.
 */
export class CampaignRunner {
  readonly #options: RunnerOptions
  readonly #lanes = new Map<string, Promise<void>>()
  /** The latest outcomes of each campaign sent here, for its auto-pause. */
  readonly #windows = new Map<string, Outcome[]>()
  /** Outcomes of recipients sent that the database did not take at once: written again before each send. */
  readonly #records: RetriedWrites
  /** Ends every wait at once when the runner stops: a shutdown never waits out a pace or a retry. */
  readonly #stopping = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #looking = false
  #stopped = false

  constructor (options: RunnerOptions) {
    this.#options = options
    this.#records = new RetriedWrites(options.log)
  }

  start (): void {
    this.#timer = setInterval(() => { void this.look() }, this.#options.lookMs)
    this.#timer.unref()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#stopping.abort()
    clearInterval(this.#timer)
    await Promise.allSettled([...this.#lanes.values()])
  }

  /** Starts a lane for each ready company with a campaign to send and none running here. */
  async look (): Promise<void> {
    if (this.#looking || this.#stopped || !this.#options.holdsAny()) return
    this.#looking = true
    try {
      // The companies with a campaign to send (a few), and of those the ones held here: not every company held, every look.
      for (const companyId of await this.#options.store.activeCompanies()) {
        const lease = this.#lanes.has(companyId) ? undefined : this.#options.readyLease(companyId)
        if (!lease) continue
        const lane = this.#run(companyId, lease)
          .catch((err: unknown) => this.#options.log.warn({ err, companyId }, 'a campaign lane stopped; the next look starts it again'))
          .finally(() => this.#lanes.delete(companyId))
        this.#lanes.set(companyId, lane)
      }
    } catch (err) {
      this.#options.log.warn({ err }, 'campaigns: a look for campaigns to send failed; the next one tries again')
    } finally {
      this.#looking = false
    }
  }

  /** Waits, or less when the runner stops. */
  async #wait (ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stopping.signal }).catch(() => {})
  }

  /** A refusal WhatsApp sent back for a campaign's message (a 463 receipt) counts against its auto-pause. */
  refused (campaignId: string, count: number): void {
    const window = this.#windows.get(campaignId)
    if (window) for (let i = 0; i < count; i++) window.push('failed')
  }

  async #run (companyId: string, lease: CommandLease): Promise<void> {
    const { store, random = Math.random } = this.#options
    const recovered = new Set<string>()
    let nextAt = 0
    while (!this.#stopped && this.#options.stillHeld(companyId, lease.epoch)) {
      const campaign = (await store.active([companyId]))[0]
      if (!campaign) return
      if (!recovered.has(campaign.id)) {
        const taken = await store.recover(companyId, campaign.id, lease.epoch)
        if (taken > 0) {
          this.#options.log.info({ companyId, campaignId: campaign.id, taken }, 'campaign recipients left mid-send are queued again')
        }
        recovered.add(campaign.id)
      }
      if (campaign.status === 'scheduled') {
        const started = await store.transition(companyId, campaign.id, ['scheduled'], 'running')
        if (started) await this.#options.progress(started, lease.epoch, true)
        continue
      }
      const waitMs = await this.#waitBeforeNext(campaign, nextAt)
      if (waitMs > 0) {
        await this.#wait(Math.min(waitMs, SLICE_MS))
        continue
      }
      const sent = await this.#sendNext(companyId, lease, campaign)
      if (sent === 'idle') continue
      if (sent === 'stop') return
      if (sent === 'sent') {
        const meanGap = MINUTE_MS / campaign.pacing.messagesPerMinute
        nextAt = Date.now() + meanGap * (1 + campaign.pacing.jitter * (2 * random() - 1))
      }
      await this.#judge(companyId, lease, campaign)
      await this.#options.progress(campaign, lease.epoch, false)
    }
  }

  /** How long until the next send may go: its pacing slot, or the company's next allowed minute. */
  async #waitBeforeNext (campaign: CampaignRow, nextAt: number): Promise<number> {
    const now = Date.now()
    if (campaign.quiet_hours === 'respect') {
      const hours = await this.#options.allowedHours(campaign.company_id)
      if (hours && !isAllowed(hours, now)) return nextAllowed(hours, now) - now
    }
    return nextAt - now
  }

  /** One recipient: checked, claimed, sent and recorded; or the campaign finished. */
  async #sendNext (companyId: string, lease: CommandLease, campaign: CampaignRow): Promise<'sent' | 'settled' | 'idle' | 'stop'> {
    const { store, log } = this.#options
    await this.#records.flush()
    const upcoming = await store.upcoming(campaign.id, CHECK_AHEAD)
    if (upcoming.length === 0) {
      // Nothing queued: finished once no recipient is mid-send (left by an older holder, recovered above).
      if (await store.sending(campaign.id) > 0) {
        await this.#wait(SLICE_MS)
        return 'idle'
      }
      const finished = await store.transition(companyId, campaign.id, ['running'], 'finished')
      if (finished) await this.#options.progress(finished, lease.epoch, true)
      this.#windows.delete(campaign.id)
      return 'idle'
    }
    let onWhatsApp: Map<string, boolean>
    try {
      onWhatsApp = await this.#options.onWhatsApp(companyId, lease, upcoming.map((recipient) => recipient.phone))
    } catch (err) {
      const failure = failureOf(err)
      if (failure.code === ErrorCode.NOT_CONNECTED || failure.code === ErrorCode.FENCED) return 'stop'
      log.debug({ err, companyId, campaignId: campaign.id }, 'campaign: the phones could not be checked; waiting')
      await this.#wait(Math.min(retryDelayOf(failure, 1), MINUTE_MS))
      return 'idle'
    }
    const messageIdOf = (seq: number) => derivedMessageId(`campaign:${campaign.id}:${seq}`)
    const recipient = await store.claimNext(companyId, campaign.id, lease.epoch, messageIdOf)
    if (!recipient) return 'idle'
    if (onWhatsApp.get(recipient.phone) === false) {
      await this.#settle(companyId, recipient, lease.epoch, {
        status: 'skipped', error: { code: 'NOT_ON_WHATSAPP', message: 'the phone is not on WhatsApp' }
      })
      this.#record(campaign, 'absent')
      return 'settled'
    }
    try {
      if (campaign.pacing.typingMs > 0) {
        await this.#options.typing(companyId, lease, recipient.phone)
        await this.#wait(campaign.pacing.typingMs)
        if (this.#stopped) {
          // Nothing went: the recipient is the next holder's (or this replica's after a restart), not a resend.
          const error = { code: 'STOPPED', message: 'the replica stopped before sending' }
          await this.#settle(companyId, recipient, lease.epoch, { status: 'queued', error })
          return 'stop'
        }
      }
      const sent = await this.#options.send(companyId, lease, requestOf(campaign, recipient), {
        campaignId: campaign.id, seq: recipient.seq, messageId: messageIdOf(recipient.seq)
      })
      // Until it is written the recipient stays `sending` under this epoch, and the campaign does not finish.
      await this.#settle(companyId, recipient, lease.epoch, { status: 'sent', messageId: sent.messageId })
      this.#record(campaign, 'ok')
      return 'sent'
    } catch (err) {
      const failure = failureOf(err)
      const error = { code: failure.code, message: failure.message }
      if (failure.passing && recipient.attempts < MAX_ATTEMPTS) {
        // Queued again, first in line: the next send is this recipient's, after the wait the failure asks for.
        await this.#settle(companyId, recipient, lease.epoch, { status: 'queued', error })
        if (failure.code === ErrorCode.NOT_CONNECTED || failure.code === ErrorCode.FENCED) return 'stop'
        await this.#wait(Math.min(retryDelayOf(failure, recipient.attempts), MINUTE_MS))
        return 'idle'
      }
      await this.#settle(companyId, recipient, lease.epoch, { status: 'failed', error })
      this.#record(campaign, 'failed')
      return 'settled'
    }
  }

  /** Records a recipient's outcome; kept and written again when the database does not take it at once. */
  async #settle (companyId: string, recipient: RecipientRow, epoch: number, outcome: Parameters<CampaignStore['settle']>[3]) {
    const { store } = this.#options
    await this.#records.write(`${recipient.campaign_id}:${recipient.seq}`, () => store.settle(companyId, recipient, epoch, outcome))
  }

  #record (campaign: CampaignRow, outcome: Outcome): void {
    const window = this.#windows.get(campaign.id) ?? []
    window.push(outcome)
    if (window.length > campaign.auto_pause.window) window.splice(0, window.length - campaign.auto_pause.window)
    this.#windows.set(campaign.id, window)
  }

  /** Pauses the campaign when too many of its latest recipients failed or are not on WhatsApp: how numbers get banned. */
  async #judge (companyId: string, lease: CommandLease, campaign: CampaignRow): Promise<void> {
    const window = this.#windows.get(campaign.id)
    if (!window || window.length < Math.min(MIN_SAMPLES, campaign.auto_pause.window)) return
    // A rate of 0 pauses at the first such recipient, not before any.
    const over = (outcome: Outcome, rate: number) => {
      const seen = window.filter((each) => each === outcome).length
      return seen > 0 && seen / window.length >= rate
    }
    const reason = over('failed', campaign.auto_pause.failureRate)
      ? 'failures'
      : over('absent', campaign.auto_pause.notOnWhatsAppRate) ? 'not_on_whatsapp' : undefined
    if (!reason) return
    const paused = await this.#options.store.transition(companyId, campaign.id, ['running'], 'paused', reason)
    this.#windows.delete(campaign.id)
    if (!paused) return
    this.#options.log.warn({ companyId, campaignId: campaign.id, reason }, 'a campaign paused itself')
    await this.#options.progress(paused, lease.epoch, true)
  }
}
