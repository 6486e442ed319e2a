import { decodeValue, encodeValue } from './codec.js';
import type { SwimLimits } from './defaults.js';
import type { Keyring } from './keyring.js';
import type { MemberRecord, Message, Update } from './messages.js';
import { frame, unframe } from './packet.js';
import { validateMessage } from './validate.js';
import { messageToWire, recordToWire, updateToWire } from './wire.js';

export type DecodeResult = { ok: true; message: Message } | { ok: false; reason: string };

export function encodeMessage(message: Message, keyring: Keyring | undefined): Uint8Array {
  return frame(encodeValue(messageToWire(message)), keyring);
}

/** Bytes one update adds to a message's update list. */
export function encodedUpdateBytes(update: Update): number {
  return encodeValue(updateToWire(update)).length;
}

/** Unframe, authenticate, decode and validate. Never throws; the reason feeds the drop counters. */
export function decodePacket(packet: Uint8Array, keyring: Keyring | undefined, limits: SwimLimits): DecodeResult {
  if (packet.length > limits.maxPacketBytes) return { ok: false, reason: 'oversize' };
  const unframed = unframe(packet, keyring);
  if (!unframed.ok) return unframed;
  const decoded = decodeValue(unframed.body);
  if (!decoded.ok) return { ok: false, reason: 'undecodable' };
  return validateMessage(decoded.value, limits);
}

/** Bytes one record adds to a sync message's record list. */
export function encodedRecordBytes(record: MemberRecord): number {
  return encodeValue(recordToWire(record)).length;
}
