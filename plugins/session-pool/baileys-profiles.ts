import { isLidUser, jidNormalizedUser } from '@whiskeysockets/baileys'
import type { BaileysArea } from './baileys-area.ts'
import type { BlocklistEvent, ProfilePort } from './profiles-port.ts'
import { WhatsAppRefusal } from './socket-port.ts'

/**
 * Profiles, contacts' profiles and blocking on Baileys' calls (`w:profile:picture`, usync `status`,
 * `status` set, `w:biz`, `blocklist`). Block list changes from the number's other devices come as
 * Baileys' `blocklist.update` (from `<notification type="account_sync"><blocklist>`); this
 * connection's own changes are emitted here, since WhatsApp tells only the other devices.
 */
export function profilePortOf (area: BaileysArea): ProfilePort {
  const { sock } = area
  /** A LID as its phone JID when the connection learned the mapping (usync, messages), else the LID. */
  const phoneJidOf = async (jid: string): Promise<string> => {
    const normalized = jidNormalizedUser(jid)
    if (!isLidUser(normalized)) return normalized
    const phone = await sock.signalRepository.lidMapping.getPNForLID(normalized).catch(() => null)
    return phone ? jidNormalizedUser(phone) : normalized
  }
  const blocklistEvent = async (action: BlocklistEvent['action'], jids: string[], otherDevice: boolean) =>
    ({ action, jids: await Promise.all(jids.map(phoneJidOf)), otherDevice })

  sock.ev.on('blocklist.update', ({ blocklist, type }) => {
    void blocklistEvent(type === 'add' ? 'block' : 'unblock', blocklist, true)
      .then((event) => area.emit('blocklist', [event]))
      .catch((err: unknown) => area.log.warn({ err }, 'a block list change could not be read'))
  })

  const ownJid = () => {
    const me = sock.authState.creds.me
    if (!me) throw new Error('the device is not linked to a number')
    return jidNormalizedUser(me.id)
  }
  return {
    ownName: () => sock.authState.creds.me?.name ?? null,
    pictureUrl: (jid, quality) => asking(async () => {
      const url = await sock.profilePictureUrl(jid, quality)
      // WhatsApp answers a picture without a URL for none it may show; Baileys passes it on as undefined.
      if (!url) throw new WhatsAppRefusal(404, 'item-not-found')
      return url
    }),
    about: (jid) => asking(async () => {
      const [found] = await sock.fetchStatus(jid) ?? []
      const status = found?.status as { status?: string | null, setAt?: Date } | undefined
      const seconds = status?.setAt ? Math.floor(status.setAt.getTime() / 1000) : 0
      return { text: status?.status || null, setAt: seconds > 0 ? seconds : null }
    }),
    businessProfile: (jid) => asking(async () => {
      const profile = await sock.getBusinessProfile(jid)
      if (!profile) return undefined
      return {
        description: profile.description ?? '',
        category: profile.category ?? null,
        email: profile.email ?? null,
        websites: profile.website ?? [],
        address: profile.address ?? null
      }
    }),
    setAbout: (text) => asking(() => sock.updateProfileStatus(text)),
    setPicture: (image) => asking(() => sock.updateProfilePicture(ownJid(), image)),
    removePicture: () => asking(() => sock.removeProfilePicture(ownJid())),
    setBlocked: (jid, blocked) => asking(async () => {
      const action = blocked ? 'block' : 'unblock'
      await sock.updateBlockStatus(jid, action)
      area.emit('blocklist', [await blocklistEvent(action, [jid], false)])
    }),
    blocklist: () => asking(async () => {
      const jids = await sock.fetchBlocklist()
      return Promise.all(jids.filter((jid): jid is string => typeof jid === 'string').map(phoneJidOf))
    })
  }
}

/**
 * WhatsApp's `<error code text>` answer, which Baileys throws as a Boom with the code as its `data`,
 * as a WhatsAppRefusal; a Boom Baileys raises itself (no LID for a phone: 400) keeps its status code.
 */
async function asking<T> (query: () => Promise<T>): Promise<T> {
  try {
    return await query()
  } catch (err) {
    const boom = err as { isBoom?: boolean, data?: unknown, message?: string, output?: { statusCode?: number } }
    if (!boom?.isBoom) throw err
    const code = typeof boom.data === 'number' ? boom.data : NaN
    if (Number.isFinite(code)) throw new WhatsAppRefusal(code, boom.message ?? 'refused')
    throw err
  }
}
