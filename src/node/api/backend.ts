import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import type { EnvoyDescriptors } from '../../envoy/descriptors.js';
import type { EnvoySettings } from '../../envoy/answer.js';
import type { EnvoyStats } from '../../envoy/stats.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import type { WireHealth, WireItemError, WireMembers, WirePoliciesInfo } from './proto.js';

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
  /** The digest of members().owners (0 with none), cheap to read per answer message (AllowStream's `ring`). */
  ringDigest(): number;
  /** A caller's clock reading, for the skew statistic. */
  recordCallerTime(timestampMs: number): void;
  /** Admin: replaces the policies cluster-wide from YAML or JSON text ('' removes them); throws INVALID_ARGUMENT for a bad document. */
  setPolicies(text: string): WirePoliciesInfo | Promise<WirePoliciesInfo>;
  getPolicies(): WirePoliciesInfo;
  /** Admin: the operator's load factor (throws INVALID_ARGUMENT outside (0, 1]); returns the factor in force. */
  setLoadFactor(factor: number): number;
  /** The Envoy rate limit configuration in force (or undefined), how the service answers, and its stats. */
  envoy(): { config: EnvoyDescriptors | undefined; settings: EnvoySettings; stats: EnvoyStats };
  /** Admin: inspect, reset or set (to `remaining`) a key at its owner; `by` names the caller in the logs. */
  admin(op: 'inspect' | 'reset' | 'set', request: RateLimitRequest, remaining: number | undefined, by: string): Promise<Reservation>;
}

export const MAX_BATCH_ITEMS = 10_000;

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
