import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import type { EnvoyDescriptors } from '../../envoy/descriptors.js';
import type { EnvoySettings } from '../../envoy/answer.js';
import type { EnvoyStats } from '../../envoy/stats.js';
import type { CalendarUnit } from '../../limiter/calendar.js';
import type { Algorithm, RateLimitRequest, Reservation } from '../../limiter/types.js';
import type { WireAllowRequest, WireAllowResponse, WireHealth, WireItemError, WireMembers, WirePoliciesInfo } from './proto.js';

/** What the public service needs from a node. */
export interface PublicApiBackend {
  readonly nodeId: string;
  /**
   * allow() (maxWaitMs undefined) or reserve(), answered synchronously when the node
   * decides at once (a key it owns); throws for bad input.
   */
  decide(request: RateLimitRequest, maxWaitMs: number | undefined): Reservation | Promise<Reservation>;
  health(): WireHealth;
  /** The owners in this node's view with their gRPC addresses (Members RPC). */
  members(): WireMembers;
  /** A caller's clock reading, for the skew statistic. */
  recordCallerTime(timestampMs: number): void;
  /** Admin: replaces the policies cluster-wide from YAML or JSON text ('' removes them); throws INVALID_ARGUMENT for a bad document. */
  setPolicies(text: string): WirePoliciesInfo;
  getPolicies(): WirePoliciesInfo;
  /** Admin: the operator's load factor (throws INVALID_ARGUMENT outside (0, 1]); returns the factor in force. */
  setLoadFactor(factor: number): number;
  /** The Envoy rate limit configuration in force (or undefined), how the service answers, and its stats. */
  envoy(): { config: EnvoyDescriptors | undefined; settings: EnvoySettings; stats: EnvoyStats };
  /** Admin: inspect, reset or set (to `remaining`) a key at its owner; `by` names the caller in the logs. */
  admin(op: 'inspect' | 'reset' | 'set', request: RateLimitRequest, remaining: number | undefined, by: string): Promise<Reservation>;
}

export const MAX_BATCH_ITEMS = 10_000;

/** Maps a wire request onto the core shape (limit and window 0 mean unset: the policies may give them); the limiter validates every field. */
export function fromWire(w: WireAllowRequest): RateLimitRequest {
  const request: RateLimitRequest = { key: w.key ?? '', limit: w.limit ?? 0 };
  // A calendar stands instead of a window: window_ms then counts only when set (the limiter refuses both).
  if (w.calendar !== undefined && w.calendar !== '') {
    request.calendar = w.calendar as CalendarUnit; // the limiter validates it
    if (w.windowMs !== undefined && w.windowMs !== 0) request.windowMs = w.windowMs;
  } else request.windowMs = w.windowMs ?? 0;
  if (w.timeZone !== undefined && w.timeZone !== '') request.timeZone = w.timeZone;
  if (w.action !== undefined && w.action !== '') request.action = w.action;
  if (w.weight !== undefined) request.weight = w.weight;
  if (w.cost !== undefined) request.cost = w.cost;
  if (w.algorithm !== undefined && w.algorithm !== '') request.algorithm = w.algorithm as Algorithm;
  if (w.burst !== undefined) request.burst = w.burst;
  if (w.global === true) request.global = true;
  if (w.group !== undefined && w.group !== '') request.group = w.group;
  return request;
}

export function toWire(r: Reservation): WireAllowResponse {
  return { allowed: r.allowed, limit: r.limit, remaining: r.remaining, resetAtMs: r.resetAtMs, retryAfterMs: r.retryAfterMs, waitMs: r.waitMs };
}

/** A wire error for one item: the limiter's code, message and field. */
export function itemError(error: unknown): WireItemError {
  return {
    code: error instanceof RingLimitError ? error.code : 'INTERNAL',
    message: error instanceof Error ? error.message : 'internal error',
    field: error instanceof RingLimitError ? (error.field ?? '') : '',
  };
}

const STATUS: Record<string, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  ABORTED: grpc.status.ABORTED,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  INTERNAL: grpc.status.INTERNAL,
};

function codeOf(error: unknown): string {
  return error instanceof RingLimitError ? error.code : 'INTERNAL';
}

/** A gRPC status for a failed call: the limiter code in the message and in the ringlimit-code / ringlimit-field trailers. */
export function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  const code = codeOf(error);
  const metadata = new grpc.Metadata();
  metadata.set('ringlimit-code', code);
  if (error instanceof RingLimitError && error.field !== undefined) metadata.set('ringlimit-field', error.field);
  const message = error instanceof Error ? error.message : 'internal error';
  return { code: STATUS[code] ?? grpc.status.INTERNAL, details: `${code}: ${message}`, metadata };
}
