import { decodeValue, encodeValue } from './codec.js';
import type { SwimLimits } from './defaults.js';
import type { Keyring } from './keyring.js';
import type { MemberRecord, Message, Update } from './messages.js';
import { frame, unframe } from './packet.js';
import type { Stamp } from './replay-guard.js';
import { validateMessage } from './validate.js';
import { messageToWire, recordToWire, updateToWire } from './wire.js';

export type DecodeResult = { ok: true; message: Message; stamp: Stamp | undefined; bound: boolean } | { ok: false; reason: string };

/**
 * With a keyring the packet is signed with `stamp` and bound to `receiverId` (its size is the
 * same with any stamp and receiver: the receiver's id is covered by the MAC, not sent).
 */
export function encodeMessage(message: Message, keyring: Keyring | undefined, stamp?: Stamp, label?: Uint8Array, receiverId?: string): Uint8Array {
  return frame(encodeValue(messageToWire(message)), keyring, stamp, label, receiverId);
}

/** Bytes one update adds to a message's update list. */
export function encodedUpdateBytes(update: Update): number {
  return encodeValue(updateToWire(update)).length;
}

/** Unframe, authenticate, decode and validate. Never throws; the reason feeds the drop counters. */
export function decodePacket(packet: Uint8Array, keyring: Keyring | undefined, limits: SwimLimits, label?: Uint8Array, selfId?: string): DecodeResult {
  if (packet.length > limits.maxPacketBytes) return { ok: false, reason: 'oversize' };
  const unframed = unframe(packet, keyring, label, selfId);
  if (!unframed.ok) return unframed;
  const decoded = decodeValue(unframed.body);
  if (!decoded.ok) return { ok: false, reason: 'undecodable' };
  const validated = validateMessage(decoded.value, limits);
  return validated.ok ? { ok: true, message: validated.message, stamp: unframed.stamp, bound: unframed.bound } : validated;
}

/** Bytes one record adds to a sync message's record list. */
export function encodedRecordBytes(record: MemberRecord): number {
  return encodeValue(recordToWire(record)).length;
}
