import { MAC_BYTES, type Keyring } from './keyring.js';

/** First byte of every packet: cheap rejection of stray traffic. */
export const PACKET_MAGIC = 0x52; // 'R'
/** Envelope version: bump only for incompatible framing changes. */
export const WIRE_VERSION = 1;
const FLAG_MAC = 0x01;
export const HEADER_BYTES = 3;

export type UnframeResult =
  | { ok: true; body: Uint8Array }
  | { ok: false; reason: 'tooShort' | 'badMagic' | 'badVersion' | 'authMissing' | 'authFailed' | 'authUnexpected' };

/** [magic, version, flags] + body + (MAC over everything before it, when a keyring is set). */
export function frame(body: Uint8Array, keyring: Keyring | undefined): Uint8Array {
  const macLength = keyring === undefined ? 0 : MAC_BYTES;
  const out = new Uint8Array(HEADER_BYTES + body.length + macLength);
  out[0] = PACKET_MAGIC;
  out[1] = WIRE_VERSION;
  out[2] = keyring === undefined ? 0 : FLAG_MAC;
  out.set(body, HEADER_BYTES);
  if (keyring !== undefined) {
    out.set(keyring.mac(out.subarray(0, HEADER_BYTES + body.length)), HEADER_BYTES + body.length);
  }
  return out;
}

export function framingOverheadBytes(keyring: Keyring | undefined): number {
  return HEADER_BYTES + (keyring === undefined ? 0 : MAC_BYTES);
}

export function unframe(packet: Uint8Array, keyring: Keyring | undefined): UnframeResult {
  if (packet.length < HEADER_BYTES + 1) return { ok: false, reason: 'tooShort' };
  if (packet[0] !== PACKET_MAGIC) return { ok: false, reason: 'badMagic' };
  if (packet[1] !== WIRE_VERSION) return { ok: false, reason: 'badVersion' };
  const flags = packet[2] ?? 0;
  const hasMac = (flags & FLAG_MAC) !== 0;
  if ((flags & ~FLAG_MAC) !== 0) return { ok: false, reason: 'badVersion' };
  if (keyring === undefined) {
    return hasMac ? { ok: false, reason: 'authUnexpected' } : { ok: true, body: packet.subarray(HEADER_BYTES) };
  }
  if (!hasMac) return { ok: false, reason: 'authMissing' };
  if (packet.length < HEADER_BYTES + 1 + MAC_BYTES) return { ok: false, reason: 'tooShort' };
  const signedEnd = packet.length - MAC_BYTES;
  if (!keyring.verify(packet.subarray(0, signedEnd), packet.subarray(signedEnd))) {
    return { ok: false, reason: 'authFailed' };
  }
  return { ok: true, body: packet.subarray(HEADER_BYTES, signedEnd) };
}
