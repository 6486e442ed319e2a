import { MAC_BYTES, type Keyring } from './keyring.js';
import type { Stamp } from './replay-guard.js';

/** First byte of every packet: cheap rejection of stray traffic. */
export const PACKET_MAGIC = 0x52; // 'R'
/** Envelope version: bump only for incompatible framing changes. */
export const WIRE_VERSION = 1;
const FLAG_MAC = 0x01;
/** Signed packets carry a stamp (epoch, sequence, time) after the header, for replay protection. */
const FLAG_STAMP = 0x02;
export const HEADER_BYTES = 3;
/** epoch u32, seq u32, time float64 ms. */
const STAMP_BYTES = 16;
const NO_STAMP: Stamp = { epoch: 0, seq: 0, ts: 0 };

export type UnframeResult =
  | { ok: true; body: Uint8Array; stamp: Stamp | undefined }
  | { ok: false; reason: 'tooShort' | 'badMagic' | 'badVersion' | 'authMissing' | 'authFailed' | 'authUnexpected' };

/**
 * [magic, version, flags] + body without a keyring; with one,
 * [magic, version, flags] + stamp + body + MAC over everything before it. `stamp` only
 * matters with a keyring (the default measures a packet's size).
 */
export function frame(body: Uint8Array, keyring: Keyring | undefined, stamp: Stamp = NO_STAMP): Uint8Array {
  if (keyring === undefined) {
    const out = new Uint8Array(HEADER_BYTES + body.length);
    out[0] = PACKET_MAGIC;
    out[1] = WIRE_VERSION;
    out.set(body, HEADER_BYTES);
    return out;
  }
  const out = new Uint8Array(HEADER_BYTES + STAMP_BYTES + body.length + MAC_BYTES);
  out[0] = PACKET_MAGIC;
  out[1] = WIRE_VERSION;
  out[2] = FLAG_MAC | FLAG_STAMP;
  const view = new DataView(out.buffer, out.byteOffset + HEADER_BYTES, STAMP_BYTES);
  view.setUint32(0, stamp.epoch >>> 0);
  view.setUint32(4, stamp.seq >>> 0);
  view.setFloat64(8, stamp.ts);
  out.set(body, HEADER_BYTES + STAMP_BYTES);
  const signedEnd = HEADER_BYTES + STAMP_BYTES + body.length;
  out.set(keyring.mac(out.subarray(0, signedEnd)), signedEnd);
  return out;
}

export function framingOverheadBytes(keyring: Keyring | undefined): number {
  return HEADER_BYTES + (keyring === undefined ? 0 : STAMP_BYTES + MAC_BYTES);
}

export function unframe(packet: Uint8Array, keyring: Keyring | undefined): UnframeResult {
  if (packet.length < HEADER_BYTES + 1) return { ok: false, reason: 'tooShort' };
  if (packet[0] !== PACKET_MAGIC) return { ok: false, reason: 'badMagic' };
  if (packet[1] !== WIRE_VERSION) return { ok: false, reason: 'badVersion' };
  const flags = packet[2] ?? 0;
  const hasMac = (flags & FLAG_MAC) !== 0;
  if ((flags & ~(FLAG_MAC | FLAG_STAMP)) !== 0 || hasMac !== ((flags & FLAG_STAMP) !== 0)) return { ok: false, reason: 'badVersion' };
  if (keyring === undefined) {
    return hasMac ? { ok: false, reason: 'authUnexpected' } : { ok: true, body: packet.subarray(HEADER_BYTES), stamp: undefined };
  }
  if (!hasMac) return { ok: false, reason: 'authMissing' };
  if (packet.length < HEADER_BYTES + STAMP_BYTES + 1 + MAC_BYTES) return { ok: false, reason: 'tooShort' };
  const signedEnd = packet.length - MAC_BYTES;
  if (!keyring.verify(packet.subarray(0, signedEnd), packet.subarray(signedEnd))) {
    return { ok: false, reason: 'authFailed' };
  }
  const view = new DataView(packet.buffer, packet.byteOffset + HEADER_BYTES, STAMP_BYTES);
  const stamp: Stamp = { epoch: view.getUint32(0), seq: view.getUint32(4), ts: view.getFloat64(8) };
  return { ok: true, body: packet.subarray(HEADER_BYTES + STAMP_BYTES, signedEnd), stamp };
}
