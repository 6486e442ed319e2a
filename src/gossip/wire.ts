import { MessageType, StateCode, UpdateKind, type MemberRecord, type Message, type Update } from './messages.js';
import type { Meta } from './types.js';

/**
 * Message <-> positional arrays (compact, and trivially checked by validate.ts).
 * Layouts, by message type (first two fields are always [type, fromNodeId]):
 *   Ping      [1, from, seq, target, updates]
 *   PingReq   [2, from, seq, target, targetAddress, updates]
 *   Ack       [3, from, seq, updates]
 *   Nack      [4, from, seq]
 *   Gossip    [5, from, updates]
 *   Sync      [6, from, wantsReply(0|1), records]      SyncReply [7, from, records]
 *   SyncDigest [8, from, digestA(u32), digestB(u32), liveCount]
 * Update:  Alive [0, id, gen, inc, address, metaFlat] | Suspect/Dead [1|2, id, gen, inc, from] | Left [3, id, gen, inc]
 * Record:  [id, address, gen, inc, stateCode, metaFlat]; metaFlat = [k1, v1, k2, v2, ...]
 */
export type WireValue = string | number | WireValue[];

export function metaToWire(meta: Meta): string[] {
  const flat: string[] = [];
  for (const key of Object.keys(meta).sort()) flat.push(key, meta[key] ?? '');
  return flat;
}

export function updateToWire(u: Update): WireValue[] {
  switch (u.kind) {
    case 'alive':
      return [UpdateKind.Alive, u.nodeId, u.generation, u.incarnation, u.address, metaToWire(u.meta)];
    case 'suspect':
      return [UpdateKind.Suspect, u.nodeId, u.generation, u.incarnation, u.from];
    case 'dead':
      return [UpdateKind.Dead, u.nodeId, u.generation, u.incarnation, u.from];
    case 'left':
      return [UpdateKind.Left, u.nodeId, u.generation, u.incarnation];
  }
}

export function recordToWire(r: MemberRecord): WireValue[] {
  return [r.nodeId, r.address, r.generation, r.incarnation, StateCode[r.state], metaToWire(r.meta)];
}

export function messageToWire(m: Message): WireValue[] {
  switch (m.type) {
    case 'ping':
      return [MessageType.Ping, m.from, m.seq, m.target, m.updates.map(updateToWire)];
    case 'ping-req':
      return [MessageType.PingReq, m.from, m.seq, m.target, m.targetAddress, m.updates.map(updateToWire)];
    case 'ack':
      return [MessageType.Ack, m.from, m.seq, m.updates.map(updateToWire)];
    case 'nack':
      return [MessageType.Nack, m.from, m.seq];
    case 'gossip':
      return [MessageType.Gossip, m.from, m.updates.map(updateToWire)];
    case 'sync':
      return [MessageType.Sync, m.from, m.wantsReply ? 1 : 0, m.members.map(recordToWire)];
    case 'sync-reply':
      return [MessageType.SyncReply, m.from, m.members.map(recordToWire)];
    case 'sync-digest':
      return [MessageType.SyncDigest, m.from, m.digest.a, m.digest.b, m.digest.count];
  }
}
