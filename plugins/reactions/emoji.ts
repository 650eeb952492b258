/**
 * Made at the first reaction, not at start: a Segmenter loads ICU's break rules and the pages of
 * Node's ICU data they are in, which an idle replica does not need.
 */
let graphemes: Intl.Segmenter | undefined
/** Half a flag: a letter in a box, not an emoji on its own. */
const LONE_REGIONAL_INDICATOR = /^\p{Regional_Indicator}$/u
/** A fully-qualified emoji or emoji sequence from Unicode's recommended set (keycaps, flags, ZWJ families, skin tones). */
const RGI_EMOJI = /^\p{RGI_Emoji}$/v
/**
 * Emoji newer than the engine's RGI list still have emoji presentation. Text-style symbols without
 * the emoji variation selector ('©', '™', a bare '❤') are not reactions: WhatsApp shows them as text.
 */
const PRESENTED_EMOJI = /^(\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F)$/u

/**
 * Whether `text` is exactly one emoji: one grapheme cluster (Intl.Segmenter) that is an emoji by
 * Unicode's emoji properties. '❤️', '👍🏽', '👨‍👩‍👧' and '🇷🇺' are; 'abcd', '❤️❤️', '1', '©' and '' are not.
 */
export function isSingleEmoji (text: string): boolean {
  graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' })
  const clusters = [...graphemes.segment(text)]
  if (clusters.length !== 1 || LONE_REGIONAL_INDICATOR.test(text)) return false
  return RGI_EMOJI.test(text) || PRESENTED_EMOJI.test(text)
}
