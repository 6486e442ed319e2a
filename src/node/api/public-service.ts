import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { MAX_BATCH_ITEMS, fromWire, itemError, toServiceError, toWire, type PublicApiBackend } from './backend.js';
import { rateLimiterServiceWithRawStream, type WireAllowBatchItem, type WireAllowRequest, type WireAllowResponse, type WireHealth, type WireMembers } from './proto.js';
import { serveAllowStream, type AllowStreamCall } from './stream-service.js';

function decideOne(backend: PublicApiBackend, w: WireAllowRequest): Promise<Reservation> {
  try {
    if (typeof w !== 'object' || w === null) throw new RingLimitError('INVALID_ARGUMENT', 'request: missing', 'request');
    if (w.timestampMs !== undefined && Number.isFinite(w.timestampMs)) backend.recordCallerTime(w.timestampMs);
    return Promise.resolve(backend.decide(fromWire(w), w.maxWaitMs));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The ringlimit.v1.RateLimiter service, added to a node's gRPC server. */
export function addPublicApi(server: grpc.Server, backend: PublicApiBackend): void {
  server.addService(rateLimiterServiceWithRawStream(), {
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
            (error: unknown): WireAllowBatchItem => ({ error: itemError(error) }),
          ),
        ),
      ).then((results) => callback(null, { results }));
    },
    allowStream: (call: AllowStreamCall) => serveAllowStream(backend, call),
    members: (_call: grpc.ServerUnaryCall<object, WireMembers>, callback: grpc.sendUnaryData<WireMembers>) => {
      callback(null, backend.members());
    },
    health: (_call: grpc.ServerUnaryCall<object, WireHealth>, callback: grpc.sendUnaryData<WireHealth>) => {
      callback(null, backend.health());
    },
  });
}
