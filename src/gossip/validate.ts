import { isValidIpAddress } from './address.js';
import type { SwimLimits } from './defaults.js';
import { EMPTY_META, freezeMeta, metaProblem } from './meta.js';
import { MessageType, StateCode, UpdateKind, type MemberRecord, type Message, type Update } from './messages.js';
import type { Meta } from './types.js';

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;
const MAX_SEQ = 0xffff_ffff;
const MAX_ITEMS = 512;
const STATE_BY_CODE = ['alive', 'suspect', 'dead', 'left'] as const;

/** Thrown only inside this module and turned into a drop reason; never escapes. */
class Invalid {
  constructor(readonly reason: string) {}
}

export type ValidationResult = { ok: true; message: Message } | { ok: false; reason: string };

/** Checks a decoded packet body field by field. Returns a typed Message or the reason to drop it. */
export function validateMessage(raw: unknown, limits: SwimLimits): ValidationResult {
  try {
    return { ok: true, message: parseMessage(raw, limits) };
  } catch (error: unknown) {
    if (error instanceof Invalid) return { ok: false, reason: error.reason };
    return { ok: false, reason: 'internal' };
  }
}

export function isValidNodeId(value: unknown, limits: SwimLimits): value is string {
  return typeof value === 'string' && value.length <= limits.maxNodeIdChars && NODE_ID.test(value);
}

function parseMessage(raw: unknown, limits: SwimLimits): Message {
  const a = array(raw, 'envelope', 2, 6);
  const type = a[0];
  const from = nodeId(a[1], limits);
  switch (type) {
    case MessageType.Ping:
      arity(a, 5);
      return { type: 'ping', from, seq: seq(a[2]), target: nodeId(a[3], limits), updates: updates(a[4], limits) };
    case MessageType.PingReq:
      arity(a, 6);
      return {
        type: 'ping-req',
        from,
        seq: seq(a[2]),
        target: nodeId(a[3], limits),
        targetAddress: address(a[4]),
        updates: updates(a[5], limits),
      };
    case MessageType.Ack:
      arity(a, 4);
      return { type: 'ack', from, seq: seq(a[2]), updates: updates(a[3], limits) };
    case MessageType.Nack:
      arity(a, 3);
      return { type: 'nack', from, seq: seq(a[2]) };
    case MessageType.Gossip:
      arity(a, 3);
      return { type: 'gossip', from, updates: updates(a[2], limits) };
    case MessageType.Sync:
      arity(a, 4);
      if (a[2] !== 0 && a[2] !== 1) throw new Invalid('badFlag');
      return { type: 'sync', from, wantsReply: a[2] === 1, members: records(a[3], limits) };
    case MessageType.SyncReply:
      arity(a, 3);
      return { type: 'sync-reply', from, members: records(a[2], limits) };
    case MessageType.SyncDigest:
      arity(a, 5);
      return { type: 'sync-digest', from, digest: { a: seq(a[2]), b: seq(a[3]), count: liveCount(a[4], limits) } };
    default:
      throw new Invalid(typeof type === 'number' && Number.isInteger(type) ? 'unknownType' : 'badType');
  }
}

function array(value: unknown, what: string, min: number, max: number): unknown[] {
  if (!Array.isArray(value)) throw new Invalid(`${what}NotArray`);
  if (value.length < min || value.length > max) throw new Invalid(`${what}Length`);
  return value;
}

function arity(a: unknown[], n: number): void {
  if (a.length !== n) throw new Invalid('arity');
}

function nodeId(value: unknown, limits: SwimLimits): string {
  if (!isValidNodeId(value, limits)) throw new Invalid('badNodeId');
  return value;
}

function seq(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_SEQ) throw new Invalid('badSeq');
  return value;
}

function liveCount(value: unknown, limits: SwimLimits): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > limits.maxMembers + 1) throw new Invalid('badCount');
  return value;
}

function counter(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Invalid('badCounter');
  return value;
}

function address(value: unknown): string {
  if (typeof value !== 'string' || !isValidIpAddress(value)) throw new Invalid('badAddress');
  return value;
}

function meta(value: unknown, limits: SwimLimits): Meta {
  const flat = array(value, 'meta', 0, limits.maxMetaEntries * 2);
  if (flat.length % 2 !== 0) throw new Invalid('metaOdd');
  if (flat.length === 0) return EMPTY_META;
  const map: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < flat.length; i += 2) {
    const key = flat[i];
    const val = flat[i + 1];
    if (typeof key !== 'string' || typeof val !== 'string') throw new Invalid('metaType');
    if (Object.hasOwn(map, key)) throw new Invalid('metaDuplicateKey');
    map[key] = val;
  }
  if (metaProblem(map, limits) !== undefined) throw new Invalid('badMeta');
  return freezeMeta(map);
}

function updates(value: unknown, limits: SwimLimits): Update[] {
  return array(value, 'updates', 0, MAX_ITEMS).map((u) => update(u, limits));
}

function update(value: unknown, limits: SwimLimits): Update {
  const a = array(value, 'update', 4, 6);
  const id = nodeId(a[1], limits);
  const generation = counter(a[2]);
  const incarnation = counter(a[3]);
  switch (a[0]) {
    case UpdateKind.Alive:
      arity(a, 6);
      return { kind: 'alive', nodeId: id, generation, incarnation, address: address(a[4]), meta: meta(a[5], limits) };
    case UpdateKind.Suspect:
    case UpdateKind.Dead:
      arity(a, 5);
      return {
        kind: a[0] === UpdateKind.Suspect ? 'suspect' : 'dead',
        nodeId: id,
        generation,
        incarnation,
        from: nodeId(a[4], limits),
      };
    case UpdateKind.Left:
      arity(a, 4);
      return { kind: 'left', nodeId: id, generation, incarnation };
    default:
      throw new Invalid('badUpdateKind');
  }
}

function records(value: unknown, limits: SwimLimits): MemberRecord[] {
  return array(value, 'records', 0, MAX_ITEMS).map((r) => record(r, limits));
}

function record(value: unknown, limits: SwimLimits): MemberRecord {
  const a = array(value, 'record', 6, 6);
  const code = a[4];
  if (typeof code !== 'number' || !Number.isInteger(code)) throw new Invalid('badState');
  const state = STATE_BY_CODE[code];
  if (state === undefined || StateCode[state] !== code) throw new Invalid('badState');
  return {
    nodeId: nodeId(a[0], limits),
    address: address(a[1]),
    generation: counter(a[2]),
    incarnation: counter(a[3]),
    state,
    meta: meta(a[5], limits),
  };
}
