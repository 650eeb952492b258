import { WhatsAppRefusal, type SocketEvents } from './socket-port.ts'
import type { AboutText, BlocklistEvent, BusinessProfile, PictureQuality, ProfilePort } from './profiles-port.ts'
import type { TestArea } from './test-area.ts'
import { Directory } from './test-group-state.ts'

/** How long the test double's picture URLs stay valid (their `oe=`), as the simulator's: two days. */
const PICTURE_URL_TTL_SECONDS = 2 * 24 * 3600
const MAX_ABOUT_LENGTH = 139

/** What an account shows others in the test double (the simulator's ProfileService, in memory). */
export interface TestProfile {
  name?: string
  about?: { text: string, setAt: number }
  picture?: { id: string, bytes: number, ttlSeconds: number }
  hidesPicture: boolean
  hidesAbout: boolean
  business?: BusinessProfile
}

/** Something the test double's sockets can be told of: a block list change by another device. */
interface Listening {
  emitLater: <K extends keyof SocketEvents>(event: K, payload: SocketEvents[K]) => void
}

/**
 * Profiles and block lists as WhatsApp keeps them, for the test double: each number's profile and
 * blocked contacts (by phone), with the simulator's rules (401 for hidden or blocked, 404 for none,
 * 406 for blocking oneself). Tests act as contacts and as the number's phone through it.
 */
export class TestProfiles {
  readonly #profiles = new Map<string, TestProfile>()
  readonly #blocked = new Map<string, Set<string>>()
  /** Every number named to it, so that its LID names it too (test-group-state.ts). */
  readonly directory = new Directory()
  readonly #openConnectionsOf: (phone: string) => Listening[]
  readonly #openConnections: () => Listening[]

  constructor (openConnectionsOf: (phone: string) => Listening[], openConnections: () => Listening[]) {
    this.#openConnectionsOf = openConnectionsOf
    this.#openConnections = openConnections
  }

  profile (phone: string): TestProfile {
    let profile = this.#profiles.get(phone)
    if (!profile) {
      profile = { hidesPicture: false, hidesAbout: false }
      this.#profiles.set(phone, profile)
    }
    return profile
  }

  blocked (phone: string): string[] {
    return [...this.#blocked.get(phone) ?? []]
  }

  /** Sets or removes (undefined) a number's picture; every open connection hears of it, as WhatsApp's `picture` notification. */
  setPicture (phone: string, image: Buffer | undefined, ttlSeconds = PICTURE_URL_TTL_SECONDS): void {
    this.profile(phone).picture = image ? { id: String(Math.floor(Date.now() / 1000)), bytes: image.length, ttlSeconds } : undefined
    const change = { jid: `${phone}@s.whatsapp.net`, removed: image === undefined }
    for (const connection of this.#openConnections()) connection.emitLater('pictures', [change])
  }

  /** The number's phone (another of its devices) blocks or unblocks a contact: its open connections hear of it. */
  block (phone: string, contact: string, blocked: boolean): void {
    if (!this.#apply(phone, contact, blocked)) return
    const event: BlocklistEvent = { action: blocked ? 'block' : 'unblock', jids: [`${contact}@s.whatsapp.net`], otherDevice: true }
    for (const connection of this.#openConnectionsOf(phone)) connection.emitLater('blocklist', [event])
  }

  /** The profile port of one socket of the number `area.phone()`. */
  port (area: TestArea): ProfilePort {
    const self = async () => {
      await area.writable()
      const phone = area.phone()
      if (!phone) throw new Error('the device is not linked to a number')
      return phone
    }
    const phoneOf = (jid: string) => {
      const phone = this.directory.phoneOf(jid)
      if (!phone) throw new WhatsAppRefusal(400, 'bad-request')
      return phone
    }
    return {
      ownName: () => {
        const phone = area.phone()
        return phone ? this.profile(phone).name ?? null : null
      },
      pictureUrl: async (jid, quality) => this.#pictureUrl(await self(), phoneOf(jid), quality),
      about: async (jid) => this.#about(await self(), phoneOf(jid)),
      businessProfile: async (jid) => {
        await self()
        const business = this.profile(phoneOf(jid)).business
        return business ? { ...business, websites: [...business.websites] } : undefined
      },
      setAbout: async (text) => {
        const phone = await self()
        if (text.length > MAX_ABOUT_LENGTH) throw new WhatsAppRefusal(406, 'not-acceptable')
        this.profile(phone).about = { text, setAt: Math.floor(Date.now() / 1000) }
      },
      // WhatsApp's server cannot read the setting (an app-state patch is encrypted between the number's devices): nothing is refused.
      setName: async (name) => { this.profile(await self()).name = name },
      setPicture: async (image) => { this.setPicture(await self(), image) },
      removePicture: async () => { this.setPicture(await self(), undefined) },
      setBlocked: async (jid, blocked) => {
        const phone = await self()
        const contact = phoneOf(jid)
        if (contact === phone) throw new WhatsAppRefusal(406, 'not-acceptable')
        // As on WhatsApp, the change is told to the number's other devices; this one hears of its own change from its port.
        if (this.#apply(phone, contact, blocked)) {
          area.emitLater('blocklist', [{ action: blocked ? 'block' : 'unblock', jids: [`${contact}@s.whatsapp.net`], otherDevice: false }])
        }
      },
      blocklist: async () => this.blocked(await self()).map((phone) => `${phone}@s.whatsapp.net`)
    }
  }

  #pictureUrl (asker: string, target: string, quality: PictureQuality): string {
    const profile = this.profile(target)
    if (target !== asker && this.#hides(target, asker, profile.hidesPicture)) throw new WhatsAppRefusal(401, 'not-authorized')
    if (!profile.picture) throw new WhatsAppRefusal(404, 'item-not-found')
    const expiry = (Math.floor(Date.now() / 1000) + profile.picture.ttlSeconds).toString(16).toUpperCase()
    return `https://pps.test.invalid/v/t61.24694-24/${target}-${profile.picture.id}-${quality}.jpg?oe=${expiry}`
  }

  #about (asker: string, target: string): AboutText {
    const profile = this.profile(target)
    if (!profile.about || (target !== asker && this.#hides(target, asker, profile.hidesAbout))) return { text: null, setAt: null }
    return { text: profile.about.text, setAt: profile.about.setAt }
  }

  /** Hidden by the owner's privacy setting, or because the owner blocked the asker. */
  #hides (owner: string, asker: string, hidden: boolean): boolean {
    return hidden || (this.#blocked.get(owner)?.has(asker) ?? false)
  }

  #apply (phone: string, contact: string, blocked: boolean): boolean {
    const list = this.#blocked.get(phone) ?? new Set<string>()
    this.#blocked.set(phone, list)
    if (list.has(contact) === blocked) return false
    if (blocked) list.add(contact)
    else list.delete(contact)
    return true
  }
}

/** The profile port of a test socket: the number's own and its contacts' profiles in `TestWhatsApp.profiles`. */
export function testProfilePort (area: TestArea): ProfilePort {
  return area.whatsapp.profiles.port(area)
}
