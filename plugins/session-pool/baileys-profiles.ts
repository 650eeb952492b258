import {
  getBinaryNodeChild, getBinaryNodeChildren, isLidUser, jidNormalizedUser, S_WHATSAPP_NET, type BinaryNode
} from '@whiskeysockets/baileys'
import { patchAppState } from './baileys-app-state.ts'
import type { BaileysArea } from './baileys-area.ts'
import type { BlocklistEvent, ProfilePort } from './profiles-port.ts'
import { WhatsAppRefusal } from './socket-port.ts'

/**
 * Profiles, contacts' profiles and blocking on Baileys' calls (`w:profile:picture`, usync `status`,
 * `status` set, `w:biz`, `blocklist`; the name is an app-state patch, `pushNameSetting` in
 * `critical_block`). The block list is read from WhatsApp's items themselves
 * (`<item jid=<lid> pn_jid=<phone>>`) rather than through Baileys' fetchBlocklist and
 * `blocklist.update`, which keep only the LID: a contact the number never wrote to would have no
 * phone. Changes from the number's other devices come as `<notification type="account_sync">
 * <blocklist>`; this connection's own changes are emitted here, since WhatsApp tells only the others.
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
  /** A block list item's contact: by phone when WhatsApp gives it (the pair is then a LID mapping learned) or the connection knows it. */
  const itemJid = async (item: BinaryNode): Promise<string | undefined> => {
    const { jid, pn_jid: pn } = item.attrs
    if (!jid) return undefined
    if (!pn) return phoneJidOf(jid)
    if (isLidUser(jid)) area.emit('lids', [{ lid: jidNormalizedUser(jid), phone: jidNormalizedUser(pn) }])
    return jidNormalizedUser(pn)
  }
  const jidsOf = async (items: BinaryNode[]) => (await Promise.all(items.map(itemJid))).filter((jid): jid is string => jid !== undefined)

  // Baileys' own handler of this notification acknowledges it; this listener only reads it.
  sock.ws.on('CB:notification,type:account_sync,blocklist', (node: BinaryNode) => {
    const items = getBinaryNodeChildren(getBinaryNodeChild(node, 'blocklist'), 'item')
    for (const action of ['block', 'unblock'] as const) {
      const changed = items.filter((item) => (item.attrs.action === 'block') === (action === 'block'))
      if (changed.length === 0) continue
      void jidsOf(changed)
        .then((jids) => area.emit('blocklist', [{ action, jids, otherDevice: true } satisfies BlocklistEvent]))
        .catch((err: unknown) => area.log.warn({ err }, 'a block list change could not be read'))
    }
  })

  // A person's `picture` notification (Baileys: contacts.update with imgUrl); groups' pictures are the groups area's.
  sock.ev.on('contacts.update', (updates) => {
    const changes = updates
      .filter((update) => update.id && (update.imgUrl === 'changed' || update.imgUrl === 'removed') && !update.id.endsWith('@g.us'))
      .map((update) => ({ jid: jidNormalizedUser(update.id!), removed: update.imgUrl === 'removed' }))
    if (changes.length > 0) area.emit('pictures', changes)
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
    // Baileys applies its own patch too (emitOwnEvents): creds.me.name is the new name once this returns.
    setName: (name) => patchAppState(sock, () => sock.updateProfileName(name)),
    setPicture: (image) => asking(() => sock.updateProfilePicture(ownJid(), image)),
    removePicture: () => asking(() => sock.removeProfilePicture(ownJid())),
    setBlocked: (jid, blocked) => asking(async () => {
      const action = blocked ? 'block' : 'unblock'
      await sock.updateBlockStatus(jid, action)
      area.emit('blocklist', [{ action, jids: [await phoneJidOf(jid)], otherDevice: false }])
    }),
    blocklist: () => asking(async () => {
      const result = await sock.query({ tag: 'iq', attrs: { xmlns: 'blocklist', to: S_WHATSAPP_NET, type: 'get' } })
      return jidsOf(getBinaryNodeChildren(getBinaryNodeChild(result, 'list'), 'item'))
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
