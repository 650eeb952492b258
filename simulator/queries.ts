import { getBinaryNodeChild, getBinaryNodeChildren, jidDecode, type BinaryNode } from '@whiskeysockets/baileys'
import { PHONE_DEVICE, userJid, type Directory } from './accounts.ts'
import type { Connection } from './connections.ts'
import type { MediaServer } from './media.ts'
import { iqResult } from './stanzas.ts'

/** Answered to the pre-key count query: above Baileys' minimum (5), so a fresh login uploads none. */
const PREKEYS_ON_SERVER = 50
/** The key index WhatsApp lists for a linked (non-zero) device; Baileys skips devices without one. */
const LINKED_KEY_INDEX = '1'
/** WhatsApp's default privacy settings; read receipts on means Baileys sends `read`, not `read-self`. */
const DEFAULT_PRIVACY: BinaryNode[] = [
  ['readreceipts', 'all'], ['last', 'all'], ['online', 'all'], ['profile', 'all'], ['status', 'contacts'], ['groupadd', 'all']
].map(([name, value]) => ({ tag: 'category', attrs: { name, value } }))

/**
 * Answers the queries a client needs answered (login, device lists, pre-key bundles, privacy, media
 * connection), and
 * any other iq with an empty result.
 */
export function answerIq (connection: Connection, iq: BinaryNode, directory: Directory, media: MediaServer): void {
  if (iq.attrs.type !== 'get' && iq.attrs.type !== 'set') return
  const child = Array.isArray(iq.content) ? iq.content[0] : undefined
  const result = iqResult(iq)
  const { xmlns } = iq.attrs
  if (xmlns === 'encrypt' && child?.tag === 'count') result.content = [{ tag: 'count', attrs: { value: String(PREKEYS_ON_SERVER) } }]
  if (xmlns === 'encrypt' && child?.tag === 'digest') result.content = [{ tag: 'digest', attrs: {} }]
  if (xmlns === 'encrypt' && child?.tag === 'key') result.content = [{ tag: 'list', attrs: {}, content: preKeyBundles(child, directory) }]
  if (xmlns === 'usync' && child?.tag === 'usync') result.content = [usync(connection, child, directory)]
  // Asked before a client's first upload: the media hosts and the upload token.
  if (xmlns === 'w:m' && child?.tag === 'media_conn') result.content = [media.mediaConn()]
  if (xmlns === 'privacy' && child?.tag === 'privacy') result.content = [{ tag: 'privacy', attrs: {}, content: DEFAULT_PRIVACY }]
  connection.send(result)
}

/** Devices, LIDs and registration of the users asked about (Baileys runs this before every send). */
function usync (connection: Connection, query: BinaryNode, directory: Directory): BinaryNode {
  const childrenOf = (tag: string) => getBinaryNodeChild(query, tag)?.content as BinaryNode[] | undefined ?? []
  const protocols = new Set(childrenOf('query').map((protocol) => protocol.tag))
  const users = childrenOf('list').filter((user) => user.tag === 'user')
  const answers = users.map((user): BinaryNode => {
    // `onWhatsApp` names a user by phone number (`<contact>+<digits></contact>`) rather than by JID.
    const byPhone = getBinaryNodeChild(user, 'contact')?.content
    const jid = user.attrs.jid ?? (byPhone ? userJid(Buffer.from(byPhone as Uint8Array).toString().replace(/\D/g, '')) : '')
    const resolved = directory.resolve(jid)
    const content: BinaryNode[] = []
    if (resolved && protocols.has('contact')) content.push({ tag: 'contact', attrs: { type: resolved.account.registered ? 'in' : 'out' } })
    if (resolved && protocols.has('lid') && resolved.account.registered && jidDecode(jid)?.server !== 'lid') {
      content.push({ tag: 'lid', attrs: { val: `${resolved.account.lid}@lid` } })
    }
    if (resolved && protocols.has('devices')) {
      const devices: BinaryNode[] = resolved.account.registered ? [{ tag: 'device', attrs: { id: String(PHONE_DEVICE) } }] : []
      // A contact's simulated companions (WhatsApp Web, desktop) are devices of its own, each with a key index.
      for (const device of resolved.account.companions.keys()) {
        devices.push({ tag: 'device', attrs: { id: String(device), 'key-index': String(device - 1) } })
      }
      // The asking device itself, as WhatsApp lists it; other linked devices of the account are not simulated as recipients.
      if (connection.device?.user === resolved.account.phone) {
        devices.push({ tag: 'device', attrs: { id: String(connection.device.device), 'key-index': LINKED_KEY_INDEX } })
      }
      content.push({ tag: 'devices', attrs: {}, content: [{ tag: 'device-list', attrs: {}, content: devices }] })
    }
    return { tag: 'user', attrs: { jid }, content }
  })
  return { tag: 'usync', attrs: { ...query.attrs }, content: [{ tag: 'result', attrs: {} }, { tag: 'list', attrs: {}, content: answers }] }
}

/** One pre-key bundle per simulated device asked for (phones, contacts' companions); other devices are left out. */
function preKeyBundles (key: BinaryNode, directory: Directory): BinaryNode[] {
  return getBinaryNodeChildren(key, 'user').flatMap((user) => {
    const resolved = directory.resolve(user.attrs.jid ?? '')
    const device = resolved?.account.registered ? resolved.account.simulatedDevice(resolved.device) : undefined
    return device ? [device.bundle(user.attrs.jid)] : []
  })
}
