import { randomBytes } from 'node:crypto'
import {
  chatModificationToAppPatch, decodeSyncdPatch, encodeSyncdPatch, getBinaryNodeChild, getBinaryNodeChildren, newLTHashState, proto,
  type BinaryNode, type ChatModification, type ChatMutation, type LTHashState, type WAPatchName
} from '@whiskeysockets/baileys'
import { deviceName, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'
import type { InboundMessage, Mailbox } from './mailbox.ts'
import { iqError, iqResult, stanzaId, unixNow, unixSeconds } from './stanzas.ts'

/** A chat's state as the account's devices agreed on it through app-state patches (what the phone shows). */
export interface ChatFlags {
  archived?: boolean
  pinned?: boolean
  /** Unix ms the chat is muted until; null: not muted. */
  mutedUntil?: number | null
  read?: boolean
  deleted?: boolean
}

/** What the phone does to a chat, as the control API takes it. */
export type PhoneChatAction =
  | { action: 'archive' | 'unarchive' | 'pin' | 'unpin' | 'read' | 'unread' | 'delete' | 'unmute' }
  | { action: 'mute', until: number }

/** One app-state collection (`regular_low`, `regular_high`, …): its patches in order, and the LTHash the devices check them by. */
interface Collection {
  version: number
  state: LTHashState
  /** Each patch as a device (or the phone) wrote it, with the version WhatsApp gave it. */
  patches: { version: number, bytes: Uint8Array }[]
}

/** One account's app state: the sync key its phone shares with each linked device, its collections, and the chats they describe. */
interface AccountState {
  phone: string
  keyId: Buffer
  keyData: Buffer
  collections: Map<string, Collection>
  chats: Map<string, ChatFlags>
  /** Devices (numbers) the phone has shared the key with. */
  sharedWith: Set<number>
  /** Changes the phone makes the moment a device's next patch arrives (it wrote first: the device's is then behind). */
  racing: (() => Promise<unknown>)[]
}

/**
 * WhatsApp's app-state sync (syncd, PROTOCOL.md § Chat state): the phone shares an app-state sync key
 * with each linked device (APP_STATE_SYNC_KEY_SHARE), the server keeps each collection's patches and
 * version, answers `w:sync:app:state` queries with the patches after the asked version, takes a
 * device's patch when it extends the latest version (its patch MAC checked with the shared key), and
 * tells the account's devices of the phone's own changes with a `server_sync` notification. The
 * `pushNameSetting` mutation (`critical_block`) is the account's name (its push name). Patches
 * are made and checked with Baileys' own syncd functions (chat-utils), so they are what Baileys makes.
 */
export class AppStateService {
  readonly #accounts = new Map<string, AccountState>()
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #record: Recorder

  constructor (options: { directory: Directory, devices: LinkedDevices, mailbox: Mailbox, record: Recorder }) {
    this.#directory = options.directory
    this.#devices = options.devices
    this.#mailbox = options.mailbox
    this.#record = options.record
  }

  /** The chats of `phone` as its app state says (what its devices archived, pinned, muted, read or deleted). */
  chats (phone: string): Record<string, ChatFlags> {
    return Object.fromEntries(this.#account(phone).chats)
  }

  /** A collection's version (0: no patch yet). */
  version (phone: string, name: string): number {
    return this.#account(phone).collections.get(name)?.version ?? 0
  }

  /**
   * A linked device logged in: the phone shares the app-state key with it the first time, as it does
   * right after linking: a protocol message from the account's own number (fromMe on the device).
   */
  async loggedIn (connection: Connection): Promise<void> {
    const device = connection.device
    if (!device) return
    const account = this.#account(device.user)
    if (account.sharedWith.has(device.device)) return
    account.sharedWith.add(device.device)
    const message: InboundMessage = {
      from: device.user,
      to: device.user,
      peer: true,
      id: stanzaId().toUpperCase(),
      at: unixSeconds(),
      content: {
        protocolMessage: {
          type: proto.Message.ProtocolMessage.Type.APP_STATE_SYNC_KEY_SHARE,
          appStateSyncKeyShare: {
            keys: [{
              keyId: { keyId: account.keyId },
              keyData: { keyData: account.keyData, timestamp: Date.now(), fingerprint: { rawId: 1, currentIndex: 0, deviceIndexes: [0] } }
            }]
          }
        }
      }
    }
    await this.#mailbox.sendMessage(connection, message)
    this.#record('app-state', `key ${account.keyId.toString('base64')} shared with ${deviceName(device)}`)
  }

  /** `<iq xmlns="w:sync:app:state" type="set"><sync><collection …/>…</sync>`: patches to take, versions to answer. */
  async answerIq (connection: Connection, iq: BinaryNode): Promise<void> {
    const device = connection.device
    if (!device) return connection.send(iqError(iq, 401, 'not-authorized'))
    const account = this.#account(device.user)
    const answers: BinaryNode[] = []
    for (const asked of getBinaryNodeChildren(getBinaryNodeChild(iq, 'sync'), 'collection')) {
      const name = asked.attrs.name ?? ''
      const collection = this.#collection(account, name)
      const patch = getBinaryNodeChild(asked, 'patch')
      if (patch) {
        for (const phoneWrites of account.racing.splice(0)) await phoneWrites()
        const refusal = await this.#take(account, name, collection, Number(asked.attrs.version), patch)
        if (refusal) {
          this.#record('app-state', `${deviceName(device)}'s patch to ${name} refused: ${refusal.code} ${refusal.text}`)
          return connection.send(iqError(iq, refusal.code, refusal.text))
        }
        this.#record('app-state', `${deviceName(device)} patched ${name} to v${collection.version}`)
        this.#notify(device.user, name, collection.version, device.device)
        answers.push({ tag: 'collection', attrs: { name, version: String(collection.version) } })
        continue
      }
      const after = Number(asked.attrs.version) || 0
      const patches = collection.patches.filter((stored) => stored.version > after)
        .map((stored): BinaryNode => ({ tag: 'patch', attrs: {}, content: stored.bytes }))
      answers.push({
        tag: 'collection',
        attrs: { name, version: String(collection.version) },
        content: patches.length > 0 ? [{ tag: 'patches', attrs: {}, content: patches }] : undefined
      })
    }
    connection.send({ ...iqResult(iq), content: [{ tag: 'sync', attrs: {}, content: answers }] })
  }

  /** The phone changes a chat (another device of the number): a patch under the shared key, and `server_sync` to the linked devices. */
  async phoneChanges (phone: string, jid: string, change: PhoneChatAction): Promise<{ collection: string, version: number }> {
    return this.#phoneWrites(phone, chatModificationToAppPatch(modificationOf(change), jid), `${change.action} ${jid}`)
  }

  /** The phone changes the account's name (its push name): a `pushNameSetting` patch in `critical_block`, as Baileys' updateProfileName. */
  async phoneRenames (phone: string, name: string): Promise<{ collection: string, version: number }> {
    return this.#phoneWrites(phone, chatModificationToAppPatch({ pushNameSetting: name }, ''), `name ${JSON.stringify(name)}`)
  }

  async #phoneWrites (phone: string, create: ReturnType<typeof chatModificationToAppPatch>, what: string) {
    const account = this.#account(phone)
    // The phone stamps its actions (Baileys reads a pin's time from it).
    create.syncAction.timestamp = Date.now()
    const collection = this.#collection(account, create.type)
    const { patch, state } = await encodeSyncdPatch(create, account.keyId.toString('base64'), collection.state, this.#keyOf(account))
    const bytes = proto.SyncdPatch.encode({ ...patch, version: { version: state.version } }).finish()
    collection.state = state
    collection.version = state.version
    collection.patches.push({ version: state.version, bytes })
    this.#apply(account, { syncAction: proto.SyncActionData.fromObject({ value: create.syncAction }), index: create.index })
    this.#record('app-state', `phone ${phone}: ${what} (${create.type} v${state.version})`)
    this.#notify(phone, create.type, state.version)
    return { collection: create.type, version: state.version }
  }

  /**
   * The phone makes this change just before a device's next patch reaches WhatsApp: the device synced
   * before it, so its patch builds on an older version (a race between two devices of the number).
   */
  raceNextPatch (phone: string, jid: string, change: PhoneChatAction): void {
    this.#account(phone).racing.push(() => this.phoneChanges(phone, jid, change))
  }

  /** The phone renames the account just before a device's next patch reaches WhatsApp (as raceNextPatch). */
  raceNextRename (phone: string, name: string): void {
    this.#account(phone).racing.push(() => this.phoneRenames(phone, name))
  }

  /** A device's patch: it must build on the collection's latest version and carry a valid patch MAC under the account's key. */
  async #take (
    account: AccountState, name: string, collection: Collection, base: number, node: BinaryNode
  ): Promise<{ code: number, text: string } | undefined> {
    if (!(node.content instanceof Uint8Array)) return { code: 400, text: 'bad-request' }
    // Someone else's patch came first: the device must fetch it and build on it.
    if (base !== collection.version) return { code: 409, text: 'conflict' }
    const version = collection.version + 1
    const mutations: ChatMutation[] = []
    let patch: proto.SyncdPatch
    try {
      patch = proto.SyncdPatch.decode(node.content)
      patch.version = { version }
      const decoded = await decodeSyncdPatch(patch, name as WAPatchName, collection.state, this.#keyOf(account), (mutation) => {
        mutations.push(mutation)
      }, true)
      collection.state = { version, hash: decoded.hash, indexValueMap: decoded.indexValueMap }
    } catch (err) {
      this.#record('error', `app-state patch to ${name} refused: ${(err as Error).message}`)
      return { code: 400, text: 'bad-request' }
    }
    collection.version = version
    collection.patches.push({ version, bytes: proto.SyncdPatch.encode(patch).finish() })
    for (const mutation of mutations) this.#apply(account, mutation)
    return undefined
  }

  /** What a mutation says of a chat, kept as the phone would show it; the name setting is the account's name. */
  #apply (account: AccountState, mutation: ChatMutation): void {
    const [type, jid] = mutation.index
    const value = mutation.syncAction.value
    if (value?.pushNameSetting?.name) {
      this.#directory.account(account.phone).pushName = value.pushNameSetting.name
      return
    }
    if (!jid || !value) return
    const flags = account.chats.get(jid) ?? {}
    if (value.archiveChatAction) flags.archived = Boolean(value.archiveChatAction.archived)
    else if (value.pinAction) flags.pinned = Boolean(value.pinAction.pinned)
    else if (value.muteAction) flags.mutedUntil = value.muteAction.muted ? Number(value.muteAction.muteEndTimestamp) : null
    else if (value.markChatAsReadAction) flags.read = Boolean(value.markChatAsReadAction.read)
    else if (value.deleteChatAction || type === 'deleteChat') {
      account.chats.set(jid, { deleted: true })
      return
    } else return
    delete flags.deleted
    account.chats.set(jid, flags)
  }

  /** `server_sync`: the account's devices (but the one that wrote it) fetch the collection again; offline ones at their next login. */
  #notify (phone: string, name: string, version: number, except?: number): void {
    const notification: BinaryNode = {
      tag: 'notification',
      attrs: { from: 's.whatsapp.net', type: 'server_sync', id: stanzaId(), t: unixNow() },
      content: [{ tag: 'collection', attrs: { name, version: String(version) } }]
    }
    for (const device of this.#directory.account(phone).knownDevices) {
      if (device === except) continue
      const name = deviceName({ user: phone, device })
      const connection = this.#devices.get(name)
      if (connection) this.#mailbox.sendNotification(connection, notification)
      else this.#mailbox.keep(name, { notification })
    }
  }

  #keyOf (account: AccountState) {
    const id = account.keyId.toString('base64')
    return async (keyId: string) => keyId === id ? proto.Message.AppStateSyncKeyData.fromObject({ keyData: account.keyData }) : undefined
  }

  #collection (account: AccountState, name: string): Collection {
    let collection = account.collections.get(name)
    if (!collection) {
      collection = { version: 0, state: newLTHashState(), patches: [] }
      account.collections.set(name, collection)
    }
    return collection
  }

  #account (phone: string): AccountState {
    let account = this.#accounts.get(phone)
    if (!account) {
      // WhatsApp's key ids are 6 bytes; the key itself is expanded by HKDF into the five syncd keys.
      account = {
        phone, keyId: randomBytes(6), keyData: randomBytes(32), collections: new Map(), chats: new Map(), sharedWith: new Set(), racing: []
      }
      this.#accounts.set(phone, account)
    }
    return account
  }
}

/** The phone's action as Baileys' chat modification (the same patch Baileys' chatModify would write). */
function modificationOf (change: PhoneChatAction): ChatModification {
  switch (change.action) {
    case 'archive': return { archive: true, lastMessages: [] }
    case 'unarchive': return { archive: false, lastMessages: [] }
    case 'pin': return { pin: true }
    case 'unpin': return { pin: false }
    case 'mute': return { mute: change.until }
    case 'unmute': return { mute: null }
    case 'read': return { markRead: true, lastMessages: [] }
    case 'unread': return { markRead: false, lastMessages: [] }
    case 'delete': return { delete: true, lastMessages: [] }
  }
}
