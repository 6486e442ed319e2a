import { invalidArgument, type RateLimitError } from '../../common/errors.js';
import type { CalendarUnit } from '../../limiter/calendar.js';
import type { Algorithm, RateLimitRequest, Reservation } from '../../limiter/types.js';
import { ProtoWriter } from './proto-writer.js';
import { FIXED64, LENGTH_DELIMITED, ProtoReader, VARINT, lastString, tag } from './proto-reader.js';

/**
 * AllowRequest and AllowResponse (proto/ringlimit/v1/ratelimiter.proto) in protobuf, written
 * from and read into the shapes the client and the node use: the one mapping between a
 * RateLimitRequest and the public wire format in each direction, and between a Reservation
 * and its answer, for every call that carries them (Allow, AllowBatch, AllowStream,
 * Inspect, Reset, SetRemaining). Other languages use the .proto as usual; tests check both
 * agree. Field numbers below are the .proto's.
 */

/** One request as the node reads it: the request shape the limiter validates. */
export interface IncomingRequest {
  id: number;
  request: RateLimitRequest;
  /** Set: a reservation with this bound. */
  maxWaitMs: number | undefined;
  timestampMs: number | undefined;
}

/** Receives one AllowResponse's fields, without an object per answer. */
export interface DecisionVisitor {
  decision(id: number, allowed: boolean, limit: number, remaining: number, resetAtMs: number, retryAfterMs: number, waitMs: number): void;
}

// ---- requests -----------------------------------------------------------------------------

/** AllowRequest's fields; the node validates every one. */
export function writeAllowRequest(w: ProtoWriter, r: RateLimitRequest, maxWaitMs: number | undefined, timestampMs: number | undefined): void {
  w.uint(tag(1, LENGTH_DELIMITED)).string(r.key);
  if (r.action !== undefined) w.uint(tag(2, LENGTH_DELIMITED)).string(r.action);
  if (r.limit !== undefined) w.uint(tag(3, VARINT)).int64(r.limit);
  if (r.windowMs !== undefined) w.uint(tag(4, FIXED64)).double(r.windowMs);
  if (r.weight !== undefined) w.uint(tag(5, FIXED64)).double(r.weight);
  if (r.cost !== undefined) w.uint(tag(6, VARINT)).int64(r.cost);
  if (r.algorithm !== undefined) w.uint(tag(7, LENGTH_DELIMITED)).string(r.algorithm);
  if (r.burst !== undefined) w.uint(tag(8, VARINT)).int64(r.burst);
  if (maxWaitMs !== undefined) w.uint(tag(9, FIXED64)).double(maxWaitMs);
  if (timestampMs !== undefined) w.uint(tag(10, FIXED64)).double(timestampMs);
  if (r.global === true) w.uint(tag(11, VARINT)).bool(true);
  if (r.group !== undefined) w.uint(tag(12, LENGTH_DELIMITED)).string(r.group);
  if (r.calendar !== undefined) w.uint(tag(13, LENGTH_DELIMITED)).string(r.calendar);
  if (r.timeZone !== undefined) w.uint(tag(14, LENGTH_DELIMITED)).string(r.timeZone);
}

const STRING_FIELDS = ['key', 'action', 'algorithm', 'group', 'calendar', 'timeZone'] as const;

/** Why writeAllowRequest threw for `r`: INVALID_ARGUMENT naming its first field that is not a string (they are written as given). */
export function unwritable(r: RateLimitRequest): RateLimitError {
  const field = STRING_FIELDS.find((f) => (f === 'key' || r[f] !== undefined) && typeof r[f] !== 'string');
  return field === undefined ? invalidArgument('request', 'must be a RateLimitRequest') : invalidArgument(field, 'must be a string');
}

// Strings that repeat from request to request: read once, then recognised by their bytes.
const lastAction = lastString();
const lastAlgorithm = lastString();
const lastGroup = lastString();
const lastCalendar = lastString();
const lastTimeZone = lastString();

/**
 * The AllowRequest that ends at `end` into `into`: empty strings and a 0 limit or window
 * are unset (the node's policies may give them), and the limiter validates every field.
 */
export function readAllowRequest(r: ProtoReader, end: number, into: IncomingRequest): void {
  const request: RateLimitRequest = { key: '', limit: 0, windowMs: 0 };
  while (r.pos < end) {
    const t = r.varint();
    switch (t) {
      case tag(1, LENGTH_DELIMITED):
        request.key = r.string();
        break;
      case tag(2, LENGTH_DELIMITED): {
        const action = r.repeatedString(lastAction);
        if (action !== '') request.action = action;
        break;
      }
      case tag(3, VARINT):
        request.limit = r.varint();
        break;
      case tag(4, FIXED64):
        request.windowMs = r.double();
        break;
      case tag(5, FIXED64):
        request.weight = r.double();
        break;
      case tag(6, VARINT):
        request.cost = r.varint();
        break;
      case tag(7, LENGTH_DELIMITED): {
        const algorithm = r.repeatedString(lastAlgorithm);
        if (algorithm !== '') request.algorithm = algorithm as Algorithm; // the limiter validates it
        break;
      }
      case tag(8, VARINT):
        request.burst = r.varint();
        break;
      case tag(9, FIXED64):
        into.maxWaitMs = r.double();
        break;
      case tag(10, FIXED64):
        into.timestampMs = r.double();
        break;
      case tag(11, VARINT):
        if (r.varint() !== 0) request.global = true;
        break;
      case tag(12, LENGTH_DELIMITED): {
        const group = r.repeatedString(lastGroup);
        if (group !== '') request.group = group;
        break;
      }
      case tag(13, LENGTH_DELIMITED): {
        const calendar = r.repeatedString(lastCalendar);
        if (calendar !== '') request.calendar = calendar as CalendarUnit; // the limiter validates it
        break;
      }
      case tag(14, LENGTH_DELIMITED): {
        const timeZone = r.repeatedString(lastTimeZone);
        if (timeZone !== '') request.timeZone = timeZone;
        break;
      }
      default:
        r.skip(t & 7);
    }
  }
  r.endOf(end);
  // A calendar stands instead of a window: window_ms then counts only when set (the limiter refuses both).
  if (request.calendar !== undefined && request.windowMs === 0) request.windowMs = undefined;
  into.request = request;
}

/** An item with the empty request: a message without one leaves it, and the limiter refuses it by name. */
export const emptyItem = (id: number): IncomingRequest => ({ id, request: { key: '', limit: 0, windowMs: 0 }, maxWaitMs: undefined, timestampMs: undefined });

/** Allow, Inspect and Reset: an AllowRequest on its own. */
export function encodeAllowRequest(request: RateLimitRequest): Buffer {
  const w = new ProtoWriter(96);
  writeAllowRequest(w, request, undefined, undefined);
  return w.finish();
}

export function decodeAllowRequest(bytes: Uint8Array): IncomingRequest {
  const r = new ProtoReader(bytes, 'AllowRequest');
  const item = emptyItem(0);
  readAllowRequest(r, r.end, item);
  return item;
}

/** SetRemainingRequest { AllowRequest request = 1; int64 remaining = 2 }. */
export function encodeSetRemainingRequest(request: RateLimitRequest, remaining: number): Buffer {
  const w = new ProtoWriter(104);
  const nested = w.uint(tag(1, LENGTH_DELIMITED)).beginMessage();
  writeAllowRequest(w, request, undefined, undefined);
  w.endMessage(nested);
  w.uint(tag(2, VARINT)).int64(remaining);
  return w.finish();
}

export function decodeSetRemainingRequest(bytes: Uint8Array): { request: RateLimitRequest; remaining: number } {
  const r = new ProtoReader(bytes, 'SetRemainingRequest');
  const item = emptyItem(0);
  let remaining = 0;
  while (r.pos < r.end) {
    const t = r.varint();
    if (t === tag(1, LENGTH_DELIMITED)) readAllowRequest(r, r.delimitedEnd(), item);
    else if (t === tag(2, VARINT)) remaining = r.varint();
    else r.skip(t & 7);
  }
  return { request: item.request, remaining };
}

// ---- answers ------------------------------------------------------------------------------

/** AllowResponse's fields. */
export function writeReservation(w: ProtoWriter, d: Reservation): void {
  w.uint(tag(1, VARINT)).bool(d.allowed); // written even when false: JS clients with defaults off read it as given
  w.uint(tag(2, VARINT)).int64(d.limit);
  w.uint(tag(3, VARINT)).int64(d.remaining);
  w.uint(tag(4, FIXED64)).double(d.resetAtMs);
  w.uint(tag(5, FIXED64)).double(d.retryAfterMs);
  w.uint(tag(6, FIXED64)).double(d.waitMs);
}

/** The AllowResponse that ends at `end`, handed to `visit` as the answer to `id`. */
export function readReservation(r: ProtoReader, end: number, id: number, visit: DecisionVisitor): void {
  let allowed = false;
  let limit = 0;
  let remaining = 0;
  let resetAtMs = 0;
  let retryAfterMs = 0;
  let waitMs = 0;
  while (r.pos < end) {
    const t = r.varint();
    switch (t) {
      case tag(1, VARINT):
        allowed = r.varint() !== 0;
        break;
      case tag(2, VARINT):
        limit = r.varint();
        break;
      case tag(3, VARINT):
        remaining = r.varint();
        break;
      case tag(4, FIXED64):
        resetAtMs = r.double();
        break;
      case tag(5, FIXED64):
        retryAfterMs = r.double();
        break;
      case tag(6, FIXED64):
        waitMs = r.double();
        break;
      default:
        r.skip(t & 7);
    }
  }
  r.endOf(end);
  visit.decision(id, allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs);
}

/** The answer of Allow, Inspect, Reset and SetRemaining. */
export function encodeAllowResponse(d: Reservation): Buffer {
  const w = new ProtoWriter(48);
  writeReservation(w, d);
  return w.finish();
}

export function decodeAllowResponse(bytes: Uint8Array): Reservation {
  const r = new ProtoReader(bytes, 'AllowResponse');
  let answer: Reservation | undefined;
  readReservation(r, r.end, 0, {
    decision: (_id, allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs) => {
      answer = { allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs };
    },
  });
  return answer!;
}
