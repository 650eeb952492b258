// The company's campaigns (GET …/campaigns, scope read), newest first: each one's state (and why it
// paused), a progress bar of the recipients done (sent, failed or skipped) out of all, how many were
// delivered and read, Pause, Resume and Cancel as its state allows (POST …/campaigns/:id/pause|resume|
// cancel, scope send) and its report as a CSV file (GET …/campaigns/:id/report, scope events).
// Each campaign_progress event moves its campaign at once; one the page has not seen asks the list again.
import { useEffect, useState } from 'preact/hooks'
import { companyPath } from './api.js'
import { RefreshButton, useAnswer } from './asking.js'
import { clockTime } from './format.js'
import { ErrorNote, html } from './html.js'

const STATES = { scheduled: 'Scheduled', running: 'Sending', paused: 'Paused', cancelled: 'Cancelled', finished: 'Finished' }
const TONES = { scheduled: 'wait', running: 'ok', paused: 'wait', cancelled: 'off', finished: 'ok' }
const REASONS = {
  manual: 'by hand',
  failures: 'by itself: too many sends failed or were refused',
  not_on_whatsapp: 'by itself: too many recipients are not on WhatsApp'
}
/** Which buttons a state shows. */
const ACTIONS = {
  scheduled: ['pause', 'cancel'],
  running: ['pause', 'cancel'],
  paused: ['resume', 'cancel'],
  cancelled: [],
  finished: []
}
const LABELS = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel' }

/** A campaign's state in words, with why it paused. */
export function campaignState (campaign) {
  const state = STATES[campaign.status] ?? campaign.status
  if (campaign.status !== 'paused' || !campaign.pausedReason) return state
  return `${state} ${REASONS[campaign.pausedReason] ?? campaign.pausedReason}`
}

/** How many recipients are done: sent, failed or skipped (delivered and read are among the sent). */
export function doneOf (campaign) {
  const { sent = 0, failed = 0, skipped = 0 } = campaign.counts ?? {}
  return sent + failed + skipped
}

/** A campaign with what a campaign_progress event says of it. */
export function withProgress (campaign, progress) {
  return {
    ...campaign,
    status: progress.status,
    pausedReason: progress.pausedReason,
    total: progress.total,
    counts: progress.counts
  }
}

/** The report's file name: the campaign's name made safe for a file system. */
function reportName (campaign) {
  const base = campaign.name.replace(/[^\p{L}\p{N}._-]+/gu, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'campaign'
  return `${base}-report.csv`
}

export function Campaigns ({ companyId, api, refresh, progress, canAct, canReport }) {
  const { answer, error, busy, askAgain } = useAnswer(() => api.get(companyPath(companyId, '/campaigns')), [companyId, refresh])
  // The campaigns as shown: the last answer, moved on by the progress events that came after it.
  const [campaigns, setCampaigns] = useState()
  useEffect(() => { if (answer) setCampaigns(answer.campaigns) }, [answer])
  useEffect(() => {
    if (!progress || !campaigns) return
    if (!campaigns.some((campaign) => campaign.id === progress.campaignId)) {
      askAgain()
      return
    }
    setCampaigns((current) => current.map((campaign) => campaign.id === progress.campaignId ? withProgress(campaign, progress) : campaign))
  }, [progress])

  return html`
    <article aria-labelledby="campaigns-title">
      <h2 id="campaigns-title">Campaigns${campaigns ? html` <span class="count">(${campaigns.length})</span>` : null}</h2>
      <${ErrorNote} error=${error} />
      ${campaigns === undefined && !error ? html`<p aria-busy="true">Loading campaigns…</p>` : null}
      ${campaigns?.length === 0 ? html`<p data-state="empty">No campaigns yet.</p>` : null}
      ${campaigns?.map((campaign) => html`<${CampaignRow} key=${campaign.id} campaign=${campaign} companyId=${companyId} api=${api}
        canAct=${canAct} canReport=${canReport}
        onChanged=${(changed) => setCampaigns((current) => current.map((one) => one.id === changed.id ? changed : one))} />`)}
      <${RefreshButton} busy=${busy} onClick=${askAgain}>Refresh campaigns<//>
    </article>`
}

function CampaignRow ({ campaign, companyId, api, canAct, canReport, onChanged }) {
  const [error, setError] = useState()
  const [working, setWorking] = useState()
  const [report, setReport] = useState()
  const titleId = `campaign-${campaign.id}`
  const counts = campaign.counts ?? {}
  const done = doneOf(campaign)
  const total = campaign.total ?? 0
  const share = total === 0 ? 0 : Math.floor((done / total) * 100)
  useEffect(() => () => { if (report) URL.revokeObjectURL(report.url) }, [report])

  const act = async (action) => {
    setError(undefined)
    setWorking(action)
    try {
      const answer = await api.post(companyPath(companyId, `/campaigns/${encodeURIComponent(campaign.id)}/${action}`))
      if (answer?.campaign) onChanged(answer.campaign)
    } catch (err) {
      setError(err)
    } finally {
      setWorking(undefined)
    }
  }
  const download = async () => {
    setError(undefined)
    setWorking('report')
    try {
      const { text, type } = await api.text(companyPath(companyId, `/campaigns/${encodeURIComponent(campaign.id)}/report`))
      // The report comes as text/csv; a JSON answer carries it in `csv`.
      const csv = type.includes('json') ? JSON.parse(text).csv : text
      const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv;charset=utf-8' }))
      setReport({ url, name: reportName(campaign), at: new Date().toISOString() })
    } catch (err) {
      setError(err)
    } finally {
      setWorking(undefined)
    }
  }

  return html`
    <section class="campaign" data-campaign=${campaign.id} data-state=${campaign.status} aria-labelledby=${titleId}>
      <h3 id=${titleId}>${campaign.name}
        ${' '}<span class=${`badge ${TONES[campaign.status] ?? 'off'}`}>${STATES[campaign.status] ?? campaign.status}</span></h3>
      <p class="state">${campaignState(campaign)}
        ${campaign.status === 'scheduled' ? ` · starts ${clockTime(campaign.startAt)}` : null}
        ${campaign.finishedAt ? ` · ended ${clockTime(campaign.finishedAt)}` : null}
        ${campaign.pacing ? ` · ${campaign.pacing.messagesPerMinute} messages a minute` : null}</p>
      <progress value=${done} max=${Math.max(total, 1)} aria-label=${`${campaign.name}: ${done} of ${total} done`}></progress>
      <p class="counts">
        <span class="done">${done} of ${total} done (${share}%)</span>
        ${' · '}<span data-count="sent">${counts.sent ?? 0} sent</span>
        ${' · '}<span data-count="delivered">${counts.delivered ?? 0} delivered</span>
        ${' · '}<span data-count="read">${counts.read ?? 0} read</span>
        ${counts.failed ? html` · <span data-count="failed">${counts.failed} failed</span>` : null}
        ${counts.skipped ? html` · <span data-count="skipped">${counts.skipped} skipped</span>` : null}
        ${counts.queued ? html` · <span data-count="queued">${counts.queued} to go</span>` : null}
      </p>
      <${ErrorNote} error=${error} />
      <div class="actions">
        ${canAct
          ? (ACTIONS[campaign.status] ?? []).map((action) => html`<button key=${action}
              class=${action === 'cancel' ? 'secondary outline small' : 'small'} disabled=${working !== undefined}
              aria-busy=${working === action ? 'true' : undefined}
              aria-label=${`${LABELS[action]} ${campaign.name}`} onClick=${() => act(action)}>${LABELS[action]}</button>`)
          : null}
        ${canReport
          ? html`<button class="secondary outline small" onClick=${download} disabled=${working !== undefined}
              aria-busy=${working === 'report' ? 'true' : undefined} aria-label=${`Prepare the report of ${campaign.name}`}>
              ${report ? 'Prepare the report again' : 'Prepare report (CSV)'}</button>`
          : null}
        ${report
          ? html`<a href=${report.url} download=${report.name} data-report=${campaign.id}>Download ${report.name}</a>`
          : null}
      </div>
    </section>`
}
