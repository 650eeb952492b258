import { getBinaryNodeChild, getBinaryNodeChildren, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, PHONE_DEVICE, userJid, type Account, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'
import type { Mailbox } from './mailbox.ts'
import type { MediaServer } from './media.ts'
import { iqBadRequest, iqError, iqResult, stanzaId, unixNow, unixSeconds } from './stanzas.ts'

/** How long a picture's URL stays valid (its `oe=`) unless a test asks for less: WhatsApp's run for days. */
export const PICTURE_URL_TTL_SECONDS = 2 * 24 * 3600

/** A business account's profile, as `w:biz` serves it. */
export interface BusinessProfile {
  description: string
  category?: string
  email?: string
  website?: string
  address?: string
}

/** What an account shows others: its about text, its picture, and for business accounts their profile. */
export interface Profile {
  about?: { text: string, setAt: number }
  picture?: { id: string, jpeg: Buffer, ttlSeconds: number }
  /** Privacy "who can see my profile photo / about": nobody (answers 401, as WhatsApp does). */
  hidesPicture: boolean
  hidesAbout: boolean
  business?: BusinessProfile
}

/** What the service needs of the simulator. */
export interface ProfileDependencies {
  directory: Directory
  devices: LinkedDevices
  mailbox: Mailbox
  media: MediaServer
  record: Recorder
}

/**
 * Profiles and block lists (PROTOCOL.md, Profiles): the queries a linked device makes for its own
 * profile and its contacts' (`w:profile:picture`, usync `status`, `status` set, `w:biz`), the block
 * list (`blocklist` get and set) and the `account_sync` notifications that tell an account's other
 * devices of a change to its block list.
 */
export class ProfileService {
  readonly #deps: ProfileDependencies
  readonly #profiles = new Map<string, Profile>()
  /** Each account's blocked contacts (phone numbers), in the order blocked. */
  readonly #blocked = new Map<string, Set<string>>()

  constructor (deps: ProfileDependencies) {
    this.#deps = deps
  }

  /** The profile of the account with this phone number (created empty on first use). */
  profile (phone: string): Profile {
    let profile = this.#profiles.get(phone)
    if (!profile) {
      // WhatsApp knows every account with a profile, by phone and by LID.
      this.#deps.directory.account(phone)
      profile = { hidesPicture: false, hidesAbout: false }
      this.#profiles.set(phone, profile)
    }
    return profile
  }

  /** The phone numbers `phone` has blocked. */
  blocked (phone: string): string[] {
    return [...this.#blocked.get(phone) ?? []]
  }

  /** Whether `phone` blocked `contact`. */
  hasBlocked (phone: string, contact: string): boolean {
    return this.#blocked.get(phone)?.has(contact) ?? false
  }

  /** A blocked contact's message: WhatsApp takes it from the contact's phone and delivers it to nobody. */
  dropped (message: { from: string, to: string, id?: string }): { id: string, devices: 0, encrypted: 0, queued: 0, blocked: true } {
    const id = message.id ?? stanzaId().toUpperCase()
    this.#deps.record('profile', `${message.from} → ${message.to} dropped: ${message.to} blocked ${message.from}`)
    return { id, devices: 0, encrypted: 0, queued: 0, blocked: true }
  }

  /** Whether this service answers the query. */
  answers (iq: BinaryNode): boolean {
    const { xmlns } = iq.attrs
    if (xmlns === 'w:profile:picture' || xmlns === 'status' || xmlns === 'w:biz' || xmlns === 'blocklist') return true
    // fetchStatus' usync asks the `status` protocol (the device and LID queries are answered in queries.ts).
    const usync = xmlns === 'usync' ? getBinaryNodeChild(iq, 'usync') : undefined
    return usync !== undefined && getBinaryNodeChild(getBinaryNodeChild(usync, 'query'), 'status') !== undefined
  }

  answerIq (connection: Connection, iq: BinaryNode): void {
    const asker = connection.device?.user
    if (!asker || (iq.attrs.type !== 'get' && iq.attrs.type !== 'set')) {
      connection.send(iqBadRequest(iq))
      return
    }
    const { xmlns } = iq.attrs
    if (xmlns === 'w:profile:picture') connection.send(this.#picture(connection, iq, asker))
    else if (xmlns === 'status') connection.send(this.#setAbout(iq, asker))
    else if (xmlns === 'usync') connection.send(this.#about(iq, asker))
    else if (xmlns === 'w:biz') connection.send(this.#business(iq))
    else if (iq.attrs.type === 'get') connection.send(this.#blocklist(iq, asker))
    else connection.send(this.#changeBlocklist(connection, iq, asker))
  }

  /** The account's phone changes its block list: every linked device of it is told. */
  block (phone: string, contact: string, blocked: boolean): void {
    if (!this.#apply(phone, contact, blocked)) return
    this.#notify(phone, contact, blocked, undefined)
  }

  /**
   * Sets (or removes: undefined) the account's picture, hosted on the media server, and tells the
   * linked devices of every account (but the device that set it) with a `picture` notification.
   */
  setPicture (phone: string, jpeg: Buffer | undefined, ttlSeconds = PICTURE_URL_TTL_SECONDS, changedBy?: Connection): void {
    const id = String(unixSeconds())
    this.profile(phone).picture = jpeg ? { id, jpeg, ttlSeconds } : undefined
    this.#deps.record('profile', `${phone} picture ${jpeg ? `set (${jpeg.length} bytes)` : 'removed'}`)
    const jid = userJid(phone)
    const change: BinaryNode = jpeg ? { tag: 'set', attrs: { jid, id } } : { tag: 'delete', attrs: { jid } }
    const notification: BinaryNode = {
      tag: 'notification', attrs: { from: jid, type: 'picture', id: stanzaId(), t: unixNow() }, content: [change]
    }
    // WhatsApp tells those who have the account among their contacts; the simulator tells every linked device.
    for (const account of this.#deps.directory.accounts()) this.#tell(account.phone, notification, changedBy)
  }

  /** A picture: its URL (hosted anew with each answer, so each URL carries its own expiry), or 404/401. */
  #picture (connection: Connection, iq: BinaryNode, asker: string): BinaryNode {
    const target = iq.attrs.target ? this.#deps.directory.resolve(iq.attrs.target)?.account.phone : asker
    if (!target) return iqError(iq, 404, 'item-not-found')
    if (iq.attrs.type === 'set') {
      // A device sets or removes only its own account's picture here (groups are answered by the group service).
      if (target !== asker) return iqError(iq, 401, 'not-authorized')
      const jpeg = getBinaryNodeChild(iq, 'picture')?.content
      this.setPicture(asker, jpeg instanceof Uint8Array ? Buffer.from(jpeg) : undefined, PICTURE_URL_TTL_SECONDS, connection)
      const result = iqResult(iq)
      const id = this.profile(asker).picture?.id
      if (id) result.content = [{ tag: 'picture', attrs: { id } }]
      return result
    }
    if (target !== asker && this.#hidesFrom(target, asker, 'picture')) return iqError(iq, 401, 'not-authorized')
    const picture = this.profile(target).picture
    if (!picture) return iqError(iq, 404, 'item-not-found')
    const type = getBinaryNodeChild(iq, 'picture')?.attrs.type === 'preview' ? 'preview' : 'image'
    const hosted = this.#deps.media.hostPicture(picture.jpeg, picture.ttlSeconds)
    const result = iqResult(iq)
    result.content = [{ tag: 'picture', attrs: { id: picture.id, type, url: hosted.url, direct_path: hosted.directPath } }]
    return result
  }

  /** `updateProfileStatus`: `<iq xmlns="status" type="set"><status>text</status>`. */
  #setAbout (iq: BinaryNode, asker: string): BinaryNode {
    const content = getBinaryNodeChild(iq, 'status')?.content
    if (iq.attrs.type !== 'set' || content === undefined) return iqBadRequest(iq)
    const text = typeof content === 'string' ? content : Buffer.from(content as Uint8Array).toString('utf8')
    if (text.length > 139) return iqError(iq, 406, 'not-acceptable')
    this.profile(asker).about = { text, setAt: unixSeconds() }
    this.#deps.record('profile', `${asker} about set`)
    return iqResult(iq)
  }

  /** usync with the `status` protocol: each user's about and when it was set; `code="401"` where it is hidden. */
  #about (iq: BinaryNode, asker: string): BinaryNode {
    const usync = getBinaryNodeChild(iq, 'usync')!
    const users = getBinaryNodeChildren(getBinaryNodeChild(usync, 'list'), 'user')
    const list = users.map((user): BinaryNode => {
      const phone = this.#deps.directory.resolve(user.attrs.jid ?? '')?.account.phone
      const about = phone ? this.profile(phone).about : undefined
      const hidden = phone !== undefined && phone !== asker && this.#hidesFrom(phone, asker, 'about')
      const status: BinaryNode = hidden
        ? { tag: 'status', attrs: { code: '401', t: '0' } }
        : about
          ? { tag: 'status', attrs: { t: String(about.setAt) }, content: Buffer.from(about.text) }
          : { tag: 'status', attrs: { t: '0' } }
      return { tag: 'user', attrs: { jid: user.attrs.jid ?? '' }, content: [status] }
    })
    const result = iqResult(iq)
    const content = [{ tag: 'result', attrs: {} }, { tag: 'list', attrs: {}, content: list }]
    result.content = [{ tag: 'usync', attrs: { ...usync.attrs }, content }]
    return result
  }

  /** `getBusinessProfile`: the profile of a business account; an empty `<business_profile>` for anyone else. */
  #business (iq: BinaryNode): BinaryNode {
    const asked = getBinaryNodeChild(getBinaryNodeChild(iq, 'business_profile'), 'profile')?.attrs.jid ?? ''
    const phone = this.#deps.directory.resolve(asked)?.account.phone
    const business = phone ? this.profile(phone).business : undefined
    const text = (tag: string, value: string | undefined): BinaryNode[] =>
      value === undefined ? [] : [{ tag, attrs: {}, content: Buffer.from(value) }]
    const profile: BinaryNode[] = business
      ? [{
          tag: 'profile',
          attrs: { jid: asked },
          content: [
            ...text('address', business.address),
            ...text('description', business.description),
            ...text('website', business.website),
            ...text('email', business.email),
            ...(business.category ? [categories(business.category)] : [])
          ]
        }]
      : []
    const result = iqResult(iq)
    result.content = [{ tag: 'business_profile', attrs: { v: '244' }, content: profile }]
    return result
  }

  /** `fetchBlocklist`: `<list>` of `<item jid="<lid>" pn_jid="<phone jid>">`. */
  #blocklist (iq: BinaryNode, asker: string): BinaryNode {
    const result = iqResult(iq)
    result.content = [{ tag: 'list', attrs: {}, content: this.blocked(asker).map((phone) => this.#item(phone)) }]
    return result
  }

  /** `updateBlockStatus`: `<item action="block" jid="<lid>" pn_jid>` or `<item action="unblock" jid="<lid>">`. */
  #changeBlocklist (connection: Connection, iq: BinaryNode, asker: string): BinaryNode {
    const item = getBinaryNodeChild(iq, 'item')
    const action = item?.attrs.action
    const contact = this.#deps.directory.resolve(item?.attrs.jid ?? '')?.account
    if ((action !== 'block' && action !== 'unblock') || !contact) return iqBadRequest(iq)
    if (action === 'block' && !item?.attrs.pn_jid) return iqBadRequest(iq)
    if (contact.phone === asker) return iqError(iq, 406, 'not-acceptable')
    if (this.#apply(asker, contact.phone, action === 'block')) this.#notify(asker, contact.phone, action === 'block', connection)
    return iqResult(iq)
  }

  #apply (phone: string, contact: string, blocked: boolean): boolean {
    const list = this.#blocked.get(phone) ?? new Set<string>()
    this.#blocked.set(phone, list)
    if (list.has(contact) === blocked) return false
    if (blocked) list.add(contact)
    else list.delete(contact)
    this.#deps.record('profile', `${phone} ${blocked ? 'blocked' : 'unblocked'} ${contact}`)
    return true
  }

  /** `<notification type="account_sync"><blocklist><item jid action>` to the account's linked devices but the one that made the change. */
  #notify (phone: string, contact: string, blocked: boolean, changedBy: Connection | undefined): void {
    const item = this.#item(contact)
    item.attrs.action = blocked ? 'block' : 'unblock'
    const notification: BinaryNode = {
      tag: 'notification',
      attrs: { from: userJid(phone), type: 'account_sync', id: stanzaId(), t: unixNow() },
      content: [{ tag: 'blocklist', attrs: {}, content: [item] }]
    }
    this.#tell(phone, notification, changedBy)
  }

  /** A notification to the account's linked devices but `changedBy`: live ones now, the others at their next login. */
  #tell (phone: string, notification: BinaryNode, changedBy: Connection | undefined): void {
    for (const device of this.#deps.directory.account(phone).knownDevices) {
      if (device === PHONE_DEVICE) continue
      const name = deviceName({ user: phone, device })
      const connection = this.#deps.devices.get(name)
      if (connection !== undefined && connection === changedBy) continue
      // Each device acknowledges its own copy: the mailbox tracks them by id.
      const copy = { ...notification, attrs: { ...notification.attrs, id: stanzaId() } }
      if (connection) this.#deps.mailbox.sendNotification(connection, copy)
      else this.#deps.mailbox.keep(name, { notification: copy })
    }
  }

  #item (phone: string): BinaryNode {
    const account: Account = this.#deps.directory.account(phone)
    return { tag: 'item', attrs: { jid: `${account.lid}@lid`, pn_jid: userJid(phone) } }
  }

  /** Whether `owner` hides this from `asker`: by its privacy setting, or because it blocked `asker` (blocked people see neither). */
  #hidesFrom (owner: string, asker: string, what: 'picture' | 'about'): boolean {
    const profile = this.profile(owner)
    const hidden = what === 'picture' ? profile.hidesPicture : profile.hidesAbout
    return hidden || this.hasBlocked(owner, asker)
  }
}

/** A business profile's category, as `w:biz` nests it. */
function categories (category: string): BinaryNode {
  return { tag: 'categories', attrs: {}, content: [{ tag: 'category', attrs: { id: '1' }, content: Buffer.from(category) }] }
}
