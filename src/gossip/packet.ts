import { MAC_BYTES, type Keyring } from './keyring.js';
import type { Stamp } from './replay-guard.js';

/** First byte of every packet: cheap rejection of stray traffic. */
export const PACKET_MAGIC = 0x52; // 'R'
/** Envelope version: bump only for incompatible framing changes. */
export const WIRE_VERSION = 1;
const FLAG_MAC = 0x01;
/** Signed packets carry a stamp (epoch, sequence, time) after the header, for replay protection. */
const FLAG_STAMP = 0x02;
/** A cluster label (one length byte, then its bytes) follows the header: nodes of other clusters drop the packet. */
const FLAG_LABEL = 0x04;
/**
 * A signed packet bound to its receiver: the MAC also covers the receiver's node id (not sent;
 * the receiver supplies its own), so a captured packet replayed to another member fails it.
 */
const FLAG_BOUND = 0x08;
/** The longest cluster label, in bytes. */
export const MAX_LABEL_BYTES = 64;
const NO_LABEL = new Uint8Array(0);
export const HEADER_BYTES = 3;
/** epoch u32, seq u32, time float64 ms. */
const STAMP_BYTES = 16;
const NO_STAMP: Stamp = { epoch: 0, seq: 0, ts: 0 };

export type UnframeResult =
  | { ok: true; body: Uint8Array; stamp: Stamp | undefined; bound: boolean }
  | { ok: false; reason: 'tooShort' | 'badMagic' | 'badVersion' | 'authMissing' | 'authFailed' | 'authUnexpected' | 'otherCluster' };

/** The bytes after the header that carry the label: none without one. */
const labelBytes = (label: Uint8Array): number => (label.length === 0 ? 0 : 1 + label.length);

/**
 * [magic, version, flags] (+ label) + body without a keyring; with one,
 * [magic, version, flags] (+ label) + stamp + body + MAC over everything before it. `stamp`
 * only matters with a keyring (the default measures a packet's size). `label`: the
 * cluster's name (at most MAX_LABEL_BYTES), so that two clusters on one network — or a
 * node that took over another cluster's old address — never merge. `receiverId`: with a
 * keyring, the node id of the member it is for (bound, FLAG_BOUND); undefined only for a
 * join's Sync to a seed whose id we do not know yet.
 */
export function frame(body: Uint8Array, keyring: Keyring | undefined, stamp: Stamp = NO_STAMP, label: Uint8Array = NO_LABEL, receiverId?: string): Uint8Array {
  const head = HEADER_BYTES + labelBytes(label);
  const out = new Uint8Array(head + (keyring === undefined ? 0 : STAMP_BYTES + MAC_BYTES) + body.length);
  out[0] = PACKET_MAGIC;
  out[1] = WIRE_VERSION;
  const bound = keyring !== undefined && receiverId !== undefined;
  out[2] = (keyring === undefined ? 0 : FLAG_MAC | FLAG_STAMP) | (label.length === 0 ? 0 : FLAG_LABEL) | (bound ? FLAG_BOUND : 0);
  if (label.length !== 0) {
    out[HEADER_BYTES] = label.length;
    out.set(label, HEADER_BYTES + 1);
  }
  if (keyring === undefined) {
    out.set(body, head);
    return out;
  }
  const view = new DataView(out.buffer, out.byteOffset + head, STAMP_BYTES);
  view.setUint32(0, stamp.epoch >>> 0);
  view.setUint32(4, stamp.seq >>> 0);
  view.setFloat64(8, stamp.ts);
  out.set(body, head + STAMP_BYTES);
  const signedEnd = head + STAMP_BYTES + body.length;
  out.set(keyring.mac(signed(out.subarray(0, signedEnd), bound ? receiverId : undefined)), signedEnd);
  return out;
}

/** What the MAC covers: the packet up to it, then for a bound packet the receiver's id and its length. */
function signed(bytes: Uint8Array, receiverId: string | undefined): Uint8Array {
  if (receiverId === undefined) return bytes;
  const id = Buffer.from(receiverId, 'utf8');
  const out = new Uint8Array(bytes.length + id.length + 1);
  out.set(bytes, 0);
  out.set(id, bytes.length);
  out[out.length - 1] = id.length;
  return out;
}

export function framingOverheadBytes(keyring: Keyring | undefined, label: Uint8Array = NO_LABEL): number {
  return HEADER_BYTES + labelBytes(label) + (keyring === undefined ? 0 : STAMP_BYTES + MAC_BYTES);
}

/** `selfId`: this node's id, which a bound packet's MAC covers (a packet bound to another member fails as authFailed). */
export function unframe(packet: Uint8Array, keyring: Keyring | undefined, label: Uint8Array = NO_LABEL, selfId = ''): UnframeResult {
  if (packet.length < HEADER_BYTES + 1) return { ok: false, reason: 'tooShort' };
  if (packet[0] !== PACKET_MAGIC) return { ok: false, reason: 'badMagic' };
  if (packet[1] !== WIRE_VERSION) return { ok: false, reason: 'badVersion' };
  const flags = packet[2] ?? 0;
  const hasMac = (flags & FLAG_MAC) !== 0;
  const bound = (flags & FLAG_BOUND) !== 0;
  if ((flags & ~(FLAG_MAC | FLAG_STAMP | FLAG_LABEL | FLAG_BOUND)) !== 0 || hasMac !== ((flags & FLAG_STAMP) !== 0) || (bound && !hasMac)) {
    return { ok: false, reason: 'badVersion' };
  }
  let head = HEADER_BYTES;
  if ((flags & FLAG_LABEL) !== 0) {
    const length = packet[HEADER_BYTES] ?? 0;
    if (length === 0 || packet.length < HEADER_BYTES + 1 + length + 1) return { ok: false, reason: 'tooShort' };
    if (!sameBytes(packet.subarray(HEADER_BYTES + 1, HEADER_BYTES + 1 + length), label)) return { ok: false, reason: 'otherCluster' };
    head += 1 + length;
  } else if (label.length !== 0) {
    return { ok: false, reason: 'otherCluster' };
  }
  if (keyring === undefined) {
    return hasMac ? { ok: false, reason: 'authUnexpected' } : { ok: true, body: packet.subarray(head), stamp: undefined, bound: false };
  }
  if (!hasMac) return { ok: false, reason: 'authMissing' };
  if (packet.length < head + STAMP_BYTES + 1 + MAC_BYTES) return { ok: false, reason: 'tooShort' };
  const signedEnd = packet.length - MAC_BYTES;
  if (!keyring.verify(signed(packet.subarray(0, signedEnd), bound ? selfId : undefined), packet.subarray(signedEnd))) {
    return { ok: false, reason: 'authFailed' };
  }
  const view = new DataView(packet.buffer, packet.byteOffset + head, STAMP_BYTES);
  const stamp: Stamp = { epoch: view.getUint32(0), seq: view.getUint32(4), ts: view.getFloat64(8) };
  return { ok: true, body: packet.subarray(head + STAMP_BYTES, signedEnd), stamp, bound };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
