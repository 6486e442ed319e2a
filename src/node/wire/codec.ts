import { plausibleRelativeState } from '../../limiter/algorithms/index.js';
import type { AlgorithmId } from '../../limiter/types.js';
import { decodeMsgpack, encodeMsgpack } from './msgpack.js';
import { FrameType, PEER_PROTOCOL_VERSION, WIRE_ERROR_CODES, type AdminOp, type DemandRow, type ForwardItem, type LeaseAskBody, type LeaseGrantBody, type LeaseReturnBody, type ForwardResult, type Frame, type WireEntry } from './frames.js';

/**
 * Peer frames as MessagePack arrays: [version, type, id, ...body]. Positional arrays
 * are compact and quick to check. decodeFrame validates every field and returns
 * undefined for anything malformed: callers count it and drop it.
 */

/** Bounds on what a frame may carry. */
export const frameLimits = {
  maxItems: 10_000,
  maxStringBytes: 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  /** A policy document travels whole in one frame: larger ones are given to every node by file. */
  maxPolicyTextBytes: 8 * 1024 * 1024,
} as const;

function itemRow(i: ForwardItem): unknown[] {
  const row: unknown[] = [i.id, i.action, i.key, i.limit, i.windowMs, i.weight, i.cost, i.algorithm, i.burst, i.hops, i.maxWaitMs];
  if (i.calendar !== '') row.push(i.global, i.op, i.remaining, i.calendar, i.timeZone);
  else if (i.op !== 0) row.push(i.global, i.op, i.remaining);
  else if (i.global) row.push(true);
  return row;
}

function resultRow(r: ForwardResult): unknown[] {
  return r.status === 0
    ? [r.id, 0, r.allowed, r.limit, r.remaining, r.resetInMs, r.retryAfterMs, r.waitMs]
    : [r.id, r.status, r.message, r.field];
}

function entryRow(e: WireEntry): unknown[] {
  return [e.action, e.key, e.algorithm, e.cells[0], e.cells[1], e.cells[2], e.cells[3]];
}

export function encodeFrame(frame: Frame): Buffer {
  const head = [PEER_PROTOCOL_VERSION, frame.type, frame.id];
  switch (frame.type) {
    case FrameType.Forward:
    case FrameType.GlobalHits:
      return encodeMsgpack([...head, frame.items.map(itemRow)]);
    case FrameType.ForwardReply:
      return encodeMsgpack([...head, frame.results.map(resultRow)]);
    case FrameType.Replicate:
    case FrameType.Handoff:
    case FrameType.GlobalState:
      return encodeMsgpack([...head, frame.entries.map(entryRow)]);
    case FrameType.Ack:
      return encodeMsgpack(head);
    case FrameType.Pull:
      return encodeMsgpack([...head, frame.action, frame.key]);
    case FrameType.PullReply:
      return encodeMsgpack([...head, frame.entry === null ? null : entryRow(frame.entry)]);
    case FrameType.PullNamed:
      return encodeMsgpack([...head, frame.handedTo]);
    case FrameType.PolicyPull:
      return encodeMsgpack([...head, frame.digest]);
    case FrameType.PolicyDoc:
      return encodeMsgpack([...head, frame.version, frame.digest, frame.text]);
    case FrameType.FairDemand:
      return encodeMsgpack([...head, frame.action, frame.reports]);
    case FrameType.FairShares:
      return encodeMsgpack([...head, frame.action, frame.levelPerWeight, frame.shares]);
    case FrameType.HandoffDone:
      return encodeMsgpack([...head, frame.version]);
    case FrameType.Greet:
      return encodeMsgpack([...head, frame.answer]);
    case FrameType.LeaseAsk:
      return encodeMsgpack([...head, frame.asks.map((a) => [itemRow(a.item), a.ratePerSec])]);
    case FrameType.LeaseGrant:
      return encodeMsgpack([...head, frame.grants.map((g) => [g.id, g.action, g.key, g.units, g.expiresInMs, g.resetInMs, g.epoch])]);
    case FrameType.LeaseReturn:
      return encodeMsgpack([...head, frame.returns.map((r) => [r.action, r.key, r.units, r.epoch])]);
  }
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= frameLimits.maxStringBytes;
/** A rate or weight: finite, not negative, and no more than a million units per ms. */
const isRate = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1e6;
const isDigest = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{16}$/.test(v);
const isSmallInt = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

/** A lease's units: a whole number of at most 2^40 (a hit count's bound). */
const isUnits = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= 2 ** 40;
/** The longest a lease may last, in ms (a day: the longest TTL its option allows). */
const LEASE_MAX_MS = 86_400_000;

/** The longest IANA zone name is 32 characters; a calendar unit is a short word. */
const isShortName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 64;

function parseItem(row: unknown): ForwardItem | undefined {
  // 11 fields; 12 with global; 14 with an admin op; 16 with a calendar (op 0 allowed there).
  if (!Array.isArray(row) || (row.length !== 11 && row.length !== 12 && row.length !== 14 && row.length !== 16)) return undefined;
  const [id, action, key, limit, windowMs, weight, cost, algorithm, burst, hops, maxWaitMs, global, op, remaining, calendar, timeZone] = row as unknown[];
  if (row.length === 12 && global !== true) return undefined;
  if (row.length === 14 && (typeof global !== 'boolean' || (op !== 1 && op !== 2) || !Number.isSafeInteger(remaining) || (remaining as number) < -1)) return undefined;
  if (row.length === 16 && (typeof global !== 'boolean' || (op !== 0 && op !== 1 && op !== 2) || !Number.isSafeInteger(remaining) || (remaining as number) < -1 || !isShortName(calendar) || !isShortName(timeZone))) return undefined;
  if (!isId(id) || !isName(action) || !isName(key)) return undefined;
  if (!isFiniteNumber(limit) || !isFiniteNumber(windowMs) || !isFiniteNumber(weight) || !isFiniteNumber(cost)) return undefined;
  if (!isSmallInt(algorithm, 3) || !isFiniteNumber(burst) || !isSmallInt(hops, 8) || !isFiniteNumber(maxWaitMs)) return undefined;
  const long = row.length >= 14;
  return {
    id,
    action,
    key,
    limit,
    windowMs,
    weight,
    cost,
    algorithm,
    burst,
    hops,
    maxWaitMs,
    global: global === true,
    op: long ? (op as AdminOp) : 0,
    remaining: long ? (remaining as number) : -1,
    calendar: row.length === 16 ? (calendar as string) : '',
    timeZone: row.length === 16 ? (timeZone as string) : '',
  };
}

function parseLeaseAsk(row: unknown): LeaseAskBody | undefined {
  if (!Array.isArray(row) || row.length !== 2 || !isRate(row[1])) return undefined;
  const item = parseItem(row[0]);
  return item === undefined ? undefined : { item, ratePerSec: row[1] as number };
}

function parseLeaseGrant(row: unknown): LeaseGrantBody | undefined {
  if (!Array.isArray(row) || row.length !== 7) return undefined;
  const [id, action, key, units, expiresInMs, resetInMs, epoch] = row as unknown[];
  if (!isId(id) || !isName(action) || !isName(key) || !isUnits(units) || !isSmallInt(expiresInMs, LEASE_MAX_MS) || !isFiniteNumber(resetInMs) || !isFiniteNumber(epoch)) return undefined;
  return { id, action, key, units, expiresInMs, resetInMs, epoch };
}

function parseLeaseReturn(row: unknown): LeaseReturnBody | undefined {
  if (!Array.isArray(row) || row.length !== 4) return undefined;
  const [action, key, units, epoch] = row as unknown[];
  return isName(action) && isName(key) && isUnits(units) && isFiniteNumber(epoch) ? { action, key, units, epoch } : undefined;
}

function parseResult(row: unknown): ForwardResult | undefined {
  if (!Array.isArray(row)) return undefined;
  const [id, status] = row as unknown[];
  if (!isId(id) || !isSmallInt(status, WIRE_ERROR_CODES.length)) return undefined;
  if (status === 0) {
    if (row.length !== 8) return undefined;
    const [, , allowed, limit, remaining, resetInMs, retryAfterMs, waitMs] = row as unknown[];
    if (typeof allowed !== 'boolean') return undefined;
    if (![limit, remaining, resetInMs, retryAfterMs, waitMs].every(isFiniteNumber)) return undefined;
    return {
      id,
      status,
      allowed,
      limit: limit as number,
      remaining: remaining as number,
      resetInMs: resetInMs as number,
      retryAfterMs: retryAfterMs as number,
      waitMs: waitMs as number,
      message: '',
      field: '',
    };
  }
  if (row.length !== 4) return undefined;
  const [, , message, field] = row as unknown[];
  if (typeof message !== 'string' || typeof field !== 'string' || message.length > 4096 || field.length > 256) return undefined;
  return { id, status, allowed: false, limit: 0, remaining: 0, resetInMs: 0, retryAfterMs: 0, waitMs: 0, message, field };
}

/** A key's state: its shape, and values the algorithm could have written (plausibleRelativeState). */
function parseEntry(row: unknown): WireEntry | undefined {
  if (!Array.isArray(row) || row.length !== 7) return undefined;
  const [action, key, algorithm, c0, c1, c2, c3] = row as unknown[];
  if (!isName(action) || !isName(key) || !isSmallInt(algorithm, 3)) return undefined;
  if (!isFiniteNumber(c0) || !isFiniteNumber(c1) || !isFiniteNumber(c2) || !isFiniteNumber(c3)) return undefined;
  const cells: WireEntry['cells'] = [c0, c1, c2, c3];
  return plausibleRelativeState(algorithm as AlgorithmId, cells) ? { action, key, algorithm, cells } : undefined;
}

function parseList<T>(rows: unknown, parse: (row: unknown) => T | undefined): T[] | undefined {
  if (!Array.isArray(rows) || rows.length > frameLimits.maxItems) return undefined;
  const out: T[] = [];
  for (const row of rows) {
    const parsed = parse(row);
    if (parsed === undefined) return undefined;
    out.push(parsed);
  }
  return out;
}

/** The frame in `bytes`, or undefined if anything about it is malformed. Never throws. */
export function decodeFrame(bytes: Uint8Array): Frame | undefined {
  if (bytes.length === 0 || bytes.length > frameLimits.maxFrameBytes) return undefined;
  const value = decodeMsgpack(bytes);
  if (!Array.isArray(value) || value.length < 3) return undefined;
  const [version, type, id] = value as unknown[];
  if (version !== PEER_PROTOCOL_VERSION || !isId(id)) return undefined;
  switch (type) {
    case FrameType.Forward:
    case FrameType.GlobalHits: {
      const items = value.length === 4 ? parseList(value[3], parseItem) : undefined;
      return items === undefined ? undefined : { type, id, items };
    }
    case FrameType.ForwardReply: {
      const results = value.length === 4 ? parseList(value[3], parseResult) : undefined;
      return results === undefined ? undefined : { type, id, results };
    }
    case FrameType.Replicate:
    case FrameType.Handoff:
    case FrameType.GlobalState: {
      const entries = value.length === 4 ? parseList(value[3], parseEntry) : undefined;
      return entries === undefined ? undefined : { type, id, entries };
    }
    case FrameType.Ack:
      return value.length === 3 ? { type, id } : undefined;
    case FrameType.Pull: {
      const [, , , action, key] = value as unknown[];
      return value.length === 5 && isName(action) && isName(key) ? { type, id, action, key } : undefined;
    }
    case FrameType.PullReply: {
      if (value.length !== 4) return undefined;
      if (value[3] === null) return { type, id, entry: null };
      const entry = parseEntry(value[3]);
      return entry === undefined ? undefined : { type, id, entry };
    }
    case FrameType.PullNamed: {
      const named = value[3];
      return value.length === 4 && isName(named) ? { type, id, handedTo: named } : undefined;
    }
    case FrameType.PolicyPull:
      return value.length === 4 && isDigest(value[3]) ? { type, id, digest: value[3] } : undefined;
    case FrameType.HandoffDone:
      return value.length === 4 && isShortName(value[3]) ? { type, id, version: value[3] } : undefined;
    case FrameType.Greet:
      return value.length === 4 && typeof value[3] === 'boolean' ? { type, id, answer: value[3] } : undefined;
    case FrameType.LeaseAsk: {
      const asks = value.length === 4 ? parseList(value[3], parseLeaseAsk) : undefined;
      return asks === undefined ? undefined : { type, id, asks };
    }
    case FrameType.LeaseGrant: {
      const grants = value.length === 4 ? parseList(value[3], parseLeaseGrant) : undefined;
      return grants === undefined ? undefined : { type, id, grants };
    }
    case FrameType.LeaseReturn: {
      const returns = value.length === 4 ? parseList(value[3], parseLeaseReturn) : undefined;
      return returns === undefined ? undefined : { type, id, returns };
    }
    case FrameType.FairDemand: {
      const [, , , action, rows] = value as unknown[];
      if (value.length !== 5 || !isName(action)) return undefined;
      const reports = parseList(rows, (row): DemandRow | undefined => {
        if (!Array.isArray(row) || row.length !== 4) return undefined;
        const [user, weight, rate, ownRate] = row as unknown[];
        return isName(user) && isRate(weight) && (weight as number) > 0 && isRate(rate) && isRate(ownRate) ? [user, weight as number, rate as number, ownRate as number] : undefined;
      });
      return reports === undefined ? undefined : { type, id, action, reports };
    }
    case FrameType.FairShares: {
      const [, , , action, levelPerWeight, rows] = value as unknown[];
      if (value.length !== 6 || !isName(action) || !isRate(levelPerWeight)) return undefined;
      const shares = parseList(rows, (row): [string, number] | undefined => {
        if (!Array.isArray(row) || row.length !== 2) return undefined;
        const [user, share] = row as unknown[];
        return isName(user) && isRate(share) ? [user, share as number] : undefined;
      });
      return shares === undefined ? undefined : { type, id, action, levelPerWeight: levelPerWeight as number, shares };
    }
    case FrameType.PolicyDoc: {
      const [, , , version, digest, text] = value as unknown[];
      if (value.length !== 6 || !isId(version) || !isDigest(digest) || typeof text !== 'string' || text.length > frameLimits.maxPolicyTextBytes) return undefined;
      return { type, id, version, digest, text };
    }
    default:
      return undefined;
  }
}
