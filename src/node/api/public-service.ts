import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { MAX_BATCH_ITEMS, fromWire, itemError, toServiceError, toWire, type PublicApiBackend } from './backend.js';
import { rateLimiterServiceWithRawStream, type WireAllowBatchItem, type WireAllowRequest, type WireAllowResponse, type WireHealth, type WireMembers } from './proto.js';
import { serveAllowStream, type AllowStreamCall } from './stream-service.js';
import { BatchBudget, batchBudgetDefaults } from './batch-budget.js';
import type { ApiTokens } from '../transport/credentials.js';

const unauthenticated = (): Partial<grpc.ServiceError> =>
  toServiceError(new RingLimitError('UNAUTHENTICATED', 'a bearer token this node accepts is required (authorization: Bearer <token>)'));

function decideOne(backend: PublicApiBackend, w: WireAllowRequest): Promise<Reservation> {
  try {
    if (typeof w !== 'object' || w === null) throw new RingLimitError('INVALID_ARGUMENT', 'request: missing', 'request');
    if (w.timestampMs !== undefined && Number.isFinite(w.timestampMs)) backend.recordCallerTime(w.timestampMs);
    return Promise.resolve(backend.decide(fromWire(w), w.maxWaitMs));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The ringlimit.v1.RateLimiter service, added to a node's gRPC server; with `tokens`, every call must carry one. */
export function addPublicApi(server: grpc.Server, backend: PublicApiBackend, tokens: ApiTokens): void {
  const budget = new BatchBudget(batchBudgetDefaults);
  server.addService(rateLimiterServiceWithRawStream(), {
    allow: (call: grpc.ServerUnaryCall<WireAllowRequest, WireAllowResponse>, callback: grpc.sendUnaryData<WireAllowResponse>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      decideOne(backend, call.request).then(
        (r) => callback(null, toWire(r)),
        (error: unknown) => callback(toServiceError(error)),
      );
    },
    allowBatch: (
      call: grpc.ServerUnaryCall<{ requests?: WireAllowRequest[] }, { results: WireAllowBatchItem[] }>,
      callback: grpc.sendUnaryData<{ results: WireAllowBatchItem[] }>,
    ) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      const requests = call.request.requests ?? [];
      if (requests.length > MAX_BATCH_ITEMS) {
        callback(toServiceError(new RingLimitError('INVALID_ARGUMENT', `requests: at most ${MAX_BATCH_ITEMS} per batch, got ${requests.length}`, 'requests')));
        return;
      }
      if (!budget.admit(requests.length)) {
        callback(toServiceError(new RingLimitError('RESOURCE_EXHAUSTED', `busy with large batches: retry, or send at most ${batchBudgetDefaults.smallBatchItems} requests per batch`)));
        return;
      }
      const large = requests.length > batchBudgetDefaults.smallBatchItems;
      const started = large ? performance.now() : 0;
      const answers = Promise.all(
        requests.map((w) =>
          decideOne(backend, w).then(
            (r): WireAllowBatchItem => ({ decision: toWire(r) }),
            (error: unknown): WireAllowBatchItem => ({ error: itemError(error) }),
          ),
        ),
      );
      if (large) budget.spent(performance.now() - started);
      answers.then((results) => {
        const encoding = large ? performance.now() : 0;
        callback(null, { results });
        if (large) budget.spent(performance.now() - encoding);
      });
    },
    allowStream: (call: AllowStreamCall) => {
      if (tokens.allows(call.metadata)) return serveAllowStream(backend, call);
      call.on('error', () => undefined);
      call.emit('error', unauthenticated());
    },
    members: (call: grpc.ServerUnaryCall<object, WireMembers>, callback: grpc.sendUnaryData<WireMembers>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      callback(null, backend.members());
    },
    health: (call: grpc.ServerUnaryCall<object, WireHealth>, callback: grpc.sendUnaryData<WireHealth>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      callback(null, backend.health());
    },
  });
}
