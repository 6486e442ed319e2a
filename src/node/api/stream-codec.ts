import { RingLimitError } from '../../common/errors.js';
import type { CalendarUnit } from '../../limiter/calendar.js';
import type { Algorithm, RateLimitRequest, Reservation } from '../../limiter/types.js';
import { MAX_BATCH_ITEMS } from './backend.js';
import { ProtoWriter } from './proto-writer.js';
import type { WireItemError } from './proto.js';

/**
 * AllowStream messages in protobuf (proto/ringlimit/v1/ratelimiter.proto), written and read
 * directly from and into the shapes the client and the node use: no intermediate wire
 * objects on the fast path. Other languages use the .proto as usual; tests check both
 * agree. Field numbers below are the .proto's.
 */

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;
const tag = (field: number, wireType: number): number => (field << 3) | wireType;

/** One request as the client sends it. */
export interface OutgoingRequest {
  id: number;
  request: RateLimitRequest;
  /** Set: a reservation with this bound. */
  maxWaitMs: number | undefined;
  timestampMs: number;
}

/** One request as the node reads it: the request shape the limiter validates. */
export interface IncomingRequest {
  id: number;
  request: RateLimitRequest;
  maxWaitMs: number | undefined;
  timestampMs: number | undefined;
}

/** One answer of an AllowBatch, in its request's place. */
export interface BatchResult {
  decision: Reservation | undefined;
  error: WireItemError | undefined;
}

/** One answer as the node sends it on a stream. */
export interface OutgoingResult extends BatchResult {
  id: number;
}

/** Receives the answers of one response message, without an object per answer. */
export interface ResultVisitor {
  decision(id: number, allowed: boolean, limit: number, remaining: number, resetAtMs: number, retryAfterMs: number, waitMs: number): void;
  error(id: number, code: string, message: string, field: string): void;
}

// ---- writing ------------------------------------------------------------------------------

function writeAllowRequest(w: ProtoWriter, r: RateLimitRequest, maxWaitMs: number | undefined, timestampMs: number | undefined): void {
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

/** AllowStreamRequest { repeated StreamedAllowRequest requests = 1 }. */
export function encodeStreamRequest(requests: readonly OutgoingRequest[]): Uint8Array {
  const w = new ProtoWriter(64 * requests.length);
  for (const r of requests) {
    const item = w.uint(tag(1, LENGTH_DELIMITED)).beginMessage();
    w.uint(tag(1, VARINT)).uint(r.id);
    const request = w.uint(tag(2, LENGTH_DELIMITED)).beginMessage();
    writeAllowRequest(w, r.request, r.maxWaitMs, r.timestampMs);
    w.endMessage(request);
    w.endMessage(item);
  }
  return w.finish();
}

/** An answer's oneof: the decision at field `decisionField`, or the error at the next field. */
function writeResult(w: ProtoWriter, decisionField: number, r: BatchResult): void {
  const d = r.decision;
  if (d !== undefined) {
    const decision = w.uint(tag(decisionField, LENGTH_DELIMITED)).beginMessage();
    w.uint(tag(1, VARINT)).bool(d.allowed); // written even when false: JS clients with defaults off read it as given
    w.uint(tag(2, VARINT)).int64(d.limit);
    w.uint(tag(3, VARINT)).int64(d.remaining);
    w.uint(tag(4, FIXED64)).double(d.resetAtMs);
    w.uint(tag(5, FIXED64)).double(d.retryAfterMs);
    w.uint(tag(6, FIXED64)).double(d.waitMs);
    w.endMessage(decision);
  } else if (r.error !== undefined) {
    const error = w.uint(tag(decisionField + 1, LENGTH_DELIMITED)).beginMessage();
    w.uint(tag(1, LENGTH_DELIMITED)).string(r.error.code);
    w.uint(tag(2, LENGTH_DELIMITED)).string(r.error.message);
    w.uint(tag(3, LENGTH_DELIMITED)).string(r.error.field);
    w.endMessage(error);
  }
}

/** AllowStreamResponse { repeated StreamedAllowResult results = 1; uint32 processed = 2 }. */
export function encodeStreamResponse(results: readonly OutgoingResult[], processed: number): Uint8Array {
  const w = new ProtoWriter(56 * results.length + 8);
  for (const r of results) {
    const item = w.uint(tag(1, LENGTH_DELIMITED)).beginMessage();
    w.uint(tag(1, VARINT)).uint(r.id);
    writeResult(w, 2, r);
    w.endMessage(item);
  }
  if (processed > 0) w.uint(tag(2, VARINT)).uint(processed);
  return w.finish();
}

/** AllowBatchResponse { repeated AllowBatchItem results = 1 }, each item { decision = 1 | error = 2 }. */
export function encodeBatchResponse(results: readonly BatchResult[]): Uint8Array {
  const w = new ProtoWriter(52 * results.length + 8);
  for (const r of results) {
    const item = w.uint(tag(1, LENGTH_DELIMITED)).beginMessage();
    writeResult(w, 1, r);
    w.endMessage(item);
  }
  return w.finish();
}

// ---- reading ------------------------------------------------------------------------------

const malformed = (why: string): RingLimitError => new RingLimitError('INVALID_ARGUMENT', `malformed AllowStream message: ${why}`);

/** A bounds-checked protobuf reader over one message; every read past its end throws. */
class Reader {
  pos: number;
  private readonly buf: Buffer;
  private readonly view: DataView;

  constructor(
    bytes: Uint8Array,
    from = 0,
    readonly end = bytes.length,
  ) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = from;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** A varint as a number: exact up to 2^53; a 64-bit value with the top bit set reads as a negative int64. */
  varint(): number {
    let lo = 0;
    let hi = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) throw malformed('truncated varint');
      const b = this.buf[this.pos++]!;
      const bits = b & 0x7f;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (shift - 32);
      if (b < 0x80) {
        lo >>>= 0;
        hi >>>= 0;
        if (hi < 0x80000000) return hi * 4_294_967_296 + lo;
        const negLo = (~lo + 1) >>> 0;
        const negHi = (~hi + (negLo === 0 ? 1 : 0)) >>> 0;
        return -(negHi * 4_294_967_296 + negLo);
      }
    }
    throw malformed('varint longer than 10 bytes');
  }

  double(): number {
    if (this.pos + 8 > this.end) throw malformed('truncated double');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** The end of a length-delimited field starting here. */
  delimitedEnd(): number {
    const length = this.varint();
    if (length < 0 || this.pos + length > this.end) throw malformed('length past the end');
    return this.pos + length;
  }

  string(): string {
    const end = this.delimitedEnd();
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return s;
  }

  /**
   * A string that usually repeats (an action, an algorithm): when its bytes are those of
   * the last one read into `last`, that same string, without decoding or allocating.
   */
  repeatedString(last: LastString): string {
    const end = this.delimitedEnd();
    const length = end - this.pos;
    if (length === last.bytes.length && this.buf.compare(last.bytes, 0, length, this.pos, end) === 0) {
      this.pos = end;
      return last.value;
    }
    const s = this.buf.toString('utf8', this.pos, end);
    if (length <= MAX_REMEMBERED_BYTES) {
      last.bytes = Buffer.from(this.buf.subarray(this.pos, end));
      last.value = s;
    }
    this.pos = end;
    return s;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        this.varint();
        return;
      case FIXED64:
        if ((this.pos += 8) > this.end) throw malformed('truncated field');
        return;
      case LENGTH_DELIMITED:
        this.pos = this.delimitedEnd();
        return;
      case FIXED32:
        if ((this.pos += 4) > this.end) throw malformed('truncated field');
        return;
      default:
        throw malformed(`wire type ${wireType}`);
    }
  }
}

/** The last string a field decoded, with its bytes. */
interface LastString {
  bytes: Buffer;
  value: string;
}

const MAX_REMEMBERED_BYTES = 64;
const lastAction: LastString = { bytes: Buffer.alloc(0), value: '' };
const lastAlgorithm: LastString = { bytes: Buffer.alloc(0), value: '' };
const lastGroup: LastString = { bytes: Buffer.alloc(0), value: '' };
const lastCalendar: LastString = { bytes: Buffer.alloc(0), value: '' };
const lastTimeZone: LastString = { bytes: Buffer.alloc(0), value: '' };

function readAllowRequest(r: Reader, end: number, into: IncomingRequest): void {
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
  if (r.pos !== end) throw malformed('field past its message');
  // A calendar stands instead of a window: window_ms then counts only when set (the limiter refuses both).
  if (request.calendar !== undefined && request.windowMs === 0) request.windowMs = undefined;
  into.request = request;
}

/**
 * The requests of one AllowStreamRequest, all or nothing: a malformed message, or one with
 * more than MAX_BATCH_ITEMS requests, throws INVALID_ARGUMENT before any is served. A
 * request without an id has no way to be answered and is left out.
 */
export function decodeStreamRequest(bytes: Uint8Array): IncomingRequest[] {
  const r = new Reader(bytes);
  const out: IncomingRequest[] = [];
  let count = 0;
  while (r.pos < r.end) {
    const t = r.varint();
    if (t !== tag(1, LENGTH_DELIMITED)) {
      r.skip(t & 7);
      continue;
    }
    if (++count > MAX_BATCH_ITEMS) throw new RingLimitError('INVALID_ARGUMENT', `requests: at most ${MAX_BATCH_ITEMS} per message`, 'requests');
    const end = r.delimitedEnd();
    const item: IncomingRequest = { id: -1, request: { key: '', limit: 0, windowMs: 0 }, maxWaitMs: undefined, timestampMs: undefined };
    while (r.pos < end) {
      const f = r.varint();
      if (f === tag(1, VARINT)) item.id = r.varint();
      else if (f === tag(2, LENGTH_DELIMITED)) readAllowRequest(r, r.delimitedEnd(), item);
      else r.skip(f & 7);
    }
    if (r.pos !== end) throw malformed('field past its message');
    // Without a request message the empty request stays, and the limiter refuses it by name.
    if (Number.isSafeInteger(item.id) && item.id >= 0) out.push(item);
  }
  return out;
}

/**
 * The requests of one AllowBatchRequest { repeated AllowRequest requests = 1 }, in order,
 * all or nothing: a malformed message, or one with more than MAX_BATCH_ITEMS requests,
 * throws INVALID_ARGUMENT. Ids are positions.
 */
export function decodeBatchRequest(bytes: Uint8Array): IncomingRequest[] {
  const r = new Reader(bytes);
  const out: IncomingRequest[] = [];
  while (r.pos < r.end) {
    const t = r.varint();
    if (t !== tag(1, LENGTH_DELIMITED)) {
      r.skip(t & 7);
      continue;
    }
    if (out.length >= MAX_BATCH_ITEMS) throw new RingLimitError('INVALID_ARGUMENT', `requests: at most ${MAX_BATCH_ITEMS} per batch`, 'requests');
    const item: IncomingRequest = { id: out.length, request: { key: '', limit: 0, windowMs: 0 }, maxWaitMs: undefined, timestampMs: undefined };
    readAllowRequest(r, r.delimitedEnd(), item);
    out.push(item);
  }
  return out;
}

function readDecision(r: Reader, end: number, id: number, visit: ResultVisitor): void {
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
  visit.decision(id, allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs);
}

function readError(r: Reader, end: number, id: number, visit: ResultVisitor): void {
  let code = '';
  let message = '';
  let field = '';
  while (r.pos < end) {
    const t = r.varint();
    if (t === tag(1, LENGTH_DELIMITED)) code = r.string();
    else if (t === tag(2, LENGTH_DELIMITED)) message = r.string();
    else if (t === tag(3, LENGTH_DELIMITED)) field = r.string();
    else r.skip(t & 7);
  }
  visit.error(id, code, message, field);
}

/** Hands each answer of one AllowStreamResponse to `visit`; returns its `processed` count. Throws on a malformed message. */
export function decodeStreamResponse(bytes: Uint8Array, visit: ResultVisitor): number {
  const r = new Reader(bytes);
  let processed = 0;
  while (r.pos < r.end) {
    const t = r.varint();
    if (t === tag(2, VARINT)) {
      processed = r.varint();
      continue;
    }
    if (t !== tag(1, LENGTH_DELIMITED)) {
      r.skip(t & 7);
      continue;
    }
    const end = r.delimitedEnd();
    let id = -1;
    // The id precedes the result in what ringlimit writes; a result before its id is read once the id is known.
    let resultStart = -1;
    let resultTag = 0;
    while (r.pos < end) {
      const f = r.varint();
      if (f === tag(1, VARINT)) id = r.varint();
      else if (f === tag(2, LENGTH_DELIMITED) || f === tag(3, LENGTH_DELIMITED)) {
        resultTag = f;
        resultStart = r.pos;
        r.pos = r.delimitedEnd();
      } else r.skip(f & 7);
    }
    if (r.pos !== end) throw malformed('field past its message');
    if (resultStart < 0) continue;
    const inner = new Reader(bytes, resultStart, end);
    const innerEnd = inner.delimitedEnd();
    if (resultTag === tag(2, LENGTH_DELIMITED)) readDecision(inner, innerEnd, id, visit);
    else readError(inner, innerEnd, id, visit);
  }
  return processed;
}
