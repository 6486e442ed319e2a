import { RingLimitError } from '../../common/errors.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import { MAX_BATCH_ITEMS } from './backend.js';
import { ProtoWriter } from './proto-writer.js';
import { LENGTH_DELIMITED, MIN_FIELD_BYTES, ProtoReader, VARINT, countFields, tag } from './proto-reader.js';
import { emptyItem, readAllowRequest, readReservation, writeAllowRequest, writeReservation, type DecisionVisitor, type IncomingRequest } from './allow-codec.js';
import type { WireItemError } from './proto.js';

/**
 * AllowStream and AllowBatch messages in protobuf (proto/ringlimit/v1/ratelimiter.proto),
 * written and read directly from and into the shapes the client and the node use: no
 * intermediate wire objects on the fast path. Their requests and answers are
 * allow-codec.ts's; this file adds what wraps them (ids, batches, errors, `processed`).
 * Field numbers below are the .proto's.
 */

/** One request as the client sends it. */
export interface OutgoingRequest {
  id: number;
  request: RateLimitRequest;
  /** Set: a reservation with this bound. */
  maxWaitMs: number | undefined;
  timestampMs: number;
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
export interface ResultVisitor extends DecisionVisitor {
  error(id: number, code: string, message: string, field: string): void;
  /** The answering node's ownersDigest (field 3), when it sends one. */
  ring(digest: number): void;
}

// ---- writing ------------------------------------------------------------------------------

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
  if (r.decision !== undefined) {
    const decision = w.uint(tag(decisionField, LENGTH_DELIMITED)).beginMessage();
    writeReservation(w, r.decision);
    w.endMessage(decision);
  } else if (r.error !== undefined) {
    const error = w.uint(tag(decisionField + 1, LENGTH_DELIMITED)).beginMessage();
    w.uint(tag(1, LENGTH_DELIMITED)).string(r.error.code);
    w.uint(tag(2, LENGTH_DELIMITED)).string(r.error.message);
    w.uint(tag(3, LENGTH_DELIMITED)).string(r.error.field);
    w.endMessage(error);
  }
}

/** AllowStreamResponse { repeated StreamedAllowResult results = 1; uint32 processed = 2; uint32 ring = 3 }. */
export function encodeStreamResponse(results: readonly OutgoingResult[], processed: number, ring = 0): Uint8Array {
  const w = new ProtoWriter(56 * results.length + 8);
  for (const r of results) {
    const item = w.uint(tag(1, LENGTH_DELIMITED)).beginMessage();
    w.uint(tag(1, VARINT)).uint(r.id);
    writeResult(w, 2, r);
    w.endMessage(item);
  }
  if (processed > 0) w.uint(tag(2, VARINT)).uint(processed);
  if (ring !== 0) w.uint(tag(3, VARINT)).uint(ring);
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

/**
 * Throws INVALID_ARGUMENT when a message holds more than MAX_BATCH_ITEMS requests (field 1),
 * counted before any is decoded. A message too short to hold that many is not scanned: the
 * hot path (AllowStream's small messages) pays nothing.
 */
function refuseTooMany(bytes: Uint8Array, what: string, message: string): void {
  if (bytes.length <= MAX_BATCH_ITEMS * MIN_FIELD_BYTES) return;
  const r = new ProtoReader(bytes, what);
  if (countFields(r, r.end, 1, MAX_BATCH_ITEMS) > MAX_BATCH_ITEMS) throw new RingLimitError('INVALID_ARGUMENT', message, 'requests');
}

/**
 * Whether an AllowStreamRequest holds more than `max` requests, counted without decoding
 * them (and not at all when it is too short to). Throws INVALID_ARGUMENT when malformed.
 */
export function holdsMoreThan(bytes: Uint8Array, max: number): boolean {
  if (bytes.length <= max * MIN_FIELD_BYTES) return false;
  const r = new ProtoReader(bytes, 'AllowStream message');
  return countFields(r, r.end, 1, max) > max;
}

/**
 * The requests of one AllowStreamRequest, all or nothing: a malformed message, or one with
 * more than MAX_BATCH_ITEMS requests, throws INVALID_ARGUMENT before any is served. A
 * request without an id has no way to be answered and is left out.
 */
export function decodeStreamRequest(bytes: Uint8Array): IncomingRequest[] {
  refuseTooMany(bytes, 'AllowStream message', `requests: at most ${MAX_BATCH_ITEMS} per message`);
  const r = new ProtoReader(bytes, 'AllowStream message');
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
    const item = emptyItem(-1);
    while (r.pos < end) {
      const f = r.varint();
      if (f === tag(1, VARINT)) item.id = r.varint();
      else if (f === tag(2, LENGTH_DELIMITED)) readAllowRequest(r, r.delimitedEnd(), item);
      else r.skip(f & 7);
    }
    r.endOf(end);
    if (Number.isSafeInteger(item.id) && item.id >= 0) out.push(item);
  }
  return out;
}

/**
 * The requests of one AllowBatchRequest { repeated AllowRequest requests = 1 }, one at a
 * time (so that a large batch is decoded in slices): counted first, so a message with more
 * than MAX_BATCH_ITEMS throws INVALID_ARGUMENT before any request is decoded; next() throws
 * INVALID_ARGUMENT at a malformed request. Ids are positions.
 */
export class BatchRequestReader {
  private readonly r: ProtoReader;
  private count = 0;

  constructor(bytes: Uint8Array) {
    refuseTooMany(bytes, 'AllowBatch request', `requests: at most ${MAX_BATCH_ITEMS} per batch`);
    this.r = new ProtoReader(bytes, 'AllowBatch request');
  }

  /** The next request, or undefined past the last. */
  next(): IncomingRequest | undefined {
    const r = this.r;
    while (r.pos < r.end) {
      const t = r.varint();
      if (t !== tag(1, LENGTH_DELIMITED)) {
        r.skip(t & 7);
        continue;
      }
      if (this.count >= MAX_BATCH_ITEMS) throw new RingLimitError('INVALID_ARGUMENT', `requests: at most ${MAX_BATCH_ITEMS} per batch`, 'requests');
      const item = emptyItem(this.count++);
      readAllowRequest(r, r.delimitedEnd(), item);
      return item;
    }
    return undefined;
  }
}

/**
 * The requests of one AllowBatchRequest, in order, all or nothing: a malformed message, or
 * one with more than MAX_BATCH_ITEMS requests, throws INVALID_ARGUMENT. Ids are positions.
 */
export function decodeBatchRequest(bytes: Uint8Array): IncomingRequest[] {
  const reader = new BatchRequestReader(bytes);
  const out: IncomingRequest[] = [];
  for (let item = reader.next(); item !== undefined; item = reader.next()) out.push(item);
  return out;
}

function readError(r: ProtoReader, end: number, id: number, visit: ResultVisitor): void {
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
  r.endOf(end);
  visit.error(id, code, message, field);
}

/** Hands each answer of one AllowStreamResponse to `visit`; returns its `processed` count. Throws on a malformed message. */
export function decodeStreamResponse(bytes: Uint8Array, visit: ResultVisitor): number {
  const r = new ProtoReader(bytes, 'AllowStream answer');
  let processed = 0;
  while (r.pos < r.end) {
    const t = r.varint();
    if (t === tag(2, VARINT)) {
      processed = r.varint();
      continue;
    }
    if (t === tag(3, VARINT)) {
      visit.ring(r.varint());
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
    r.endOf(end);
    if (resultStart < 0) continue;
    r.pos = resultStart;
    const resultEnd = r.delimitedEnd();
    if (resultTag === tag(2, LENGTH_DELIMITED)) readReservation(r, resultEnd, id, visit);
    else readError(r, resultEnd, id, visit);
    r.pos = end;
  }
  return processed;
}
