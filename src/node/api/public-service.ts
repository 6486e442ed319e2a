import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import type { Algorithm, RateLimitRequest, Reservation } from '../../limiter/types.js';
import { rateLimiterService, type WireAllowBatchItem, type WireAllowRequest, type WireAllowResponse, type WireHealth } from './proto.js';

/** What the public service needs from a node. */
export interface PublicApiBackend {
  readonly nodeId: string;
  allow(request: RateLimitRequest): Promise<Reservation>;
  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Promise<Reservation>;
  health(): WireHealth;
  /** A caller's clock reading, for the skew statistic. */
  recordCallerTime(timestampMs: number): void;
}

export const MAX_BATCH_ITEMS = 10_000;

/** Maps a wire request onto the core shape; the limiter validates every field. */
export function fromWire(w: WireAllowRequest): RateLimitRequest {
  const request: RateLimitRequest = {
    key: w.key ?? '',
    limit: w.limit ?? 0,
    windowMs: w.windowMs ?? 0,
  };
  if (w.action !== undefined && w.action !== '') request.action = w.action;
  if (w.weight !== undefined) request.weight = w.weight;
  if (w.cost !== undefined) request.cost = w.cost;
  if (w.algorithm !== undefined && w.algorithm !== '') request.algorithm = w.algorithm as Algorithm;
  if (w.burst !== undefined) request.burst = w.burst;
  return request;
}

export function toWire(r: Reservation): WireAllowResponse {
  return { allowed: r.allowed, limit: r.limit, remaining: r.remaining, resetAtMs: r.resetAtMs, retryAfterMs: r.retryAfterMs, waitMs: r.waitMs };
}

const STATUS: Record<string, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  ABORTED: grpc.status.ABORTED,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
};

function codeOf(error: unknown): string {
  return error instanceof RingLimitError ? error.code : 'INTERNAL';
}

function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  const code = codeOf(error);
  const metadata = new grpc.Metadata();
  metadata.set('ringlimit-code', code);
  if (error instanceof RingLimitError && error.field !== undefined) metadata.set('ringlimit-field', error.field);
  const message = error instanceof Error ? error.message : 'internal error';
  return { code: STATUS[code] ?? grpc.status.INTERNAL, details: `${code}: ${message}`, metadata };
}

function decideOne(backend: PublicApiBackend, w: WireAllowRequest): Promise<Reservation> {
  if (typeof w !== 'object' || w === null) return Promise.reject(new RingLimitError('INVALID_ARGUMENT', 'request: missing'));
  if (w.timestampMs !== undefined && Number.isFinite(w.timestampMs)) backend.recordCallerTime(w.timestampMs);
  const request = fromWire(w);
  return w.maxWaitMs === undefined ? backend.allow(request) : backend.reserve(request, { maxWaitMs: w.maxWaitMs });
}

/** The ringlimit.v1.RateLimiter service, added to a node's gRPC server. */
export function addPublicApi(server: grpc.Server, backend: PublicApiBackend): void {
  server.addService(rateLimiterService(), {
    allow: (call: grpc.ServerUnaryCall<WireAllowRequest, WireAllowResponse>, callback: grpc.sendUnaryData<WireAllowResponse>) => {
      decideOne(backend, call.request).then(
        (r) => callback(null, toWire(r)),
        (error: unknown) => callback(toServiceError(error)),
      );
    },
    allowBatch: (
      call: grpc.ServerUnaryCall<{ requests?: WireAllowRequest[] }, { results: WireAllowBatchItem[] }>,
      callback: grpc.sendUnaryData<{ results: WireAllowBatchItem[] }>,
    ) => {
      const requests = call.request.requests ?? [];
      if (requests.length > MAX_BATCH_ITEMS) {
        callback(toServiceError(new RingLimitError('INVALID_ARGUMENT', `requests: at most ${MAX_BATCH_ITEMS} per batch, got ${requests.length}`, 'requests')));
        return;
      }
      Promise.all(
        requests.map((w) =>
          decideOne(backend, w).then(
            (r): WireAllowBatchItem => ({ decision: toWire(r) }),
            (error: unknown): WireAllowBatchItem => ({
              error: { code: codeOf(error), message: error instanceof Error ? error.message : 'internal error', field: error instanceof RingLimitError ? (error.field ?? '') : '' },
            }),
          ),
        ),
      ).then((results) => callback(null, { results }));
    },
    health: (_call: grpc.ServerUnaryCall<object, WireHealth>, callback: grpc.sendUnaryData<WireHealth>) => {
      callback(null, backend.health());
    },
  });
}
