import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { fromWire, itemError, toServiceError, toWire, type PublicApiBackend } from './backend.js';
import { rateLimiterServiceWithRawStream, type WireAllowBatchItem, type WireAllowRequest, type WireAllowResponse, type WireHealth, type WireMembers } from './proto.js';
import { serveAllowStream, type AllowStreamCall } from './stream-service.js';
import { decodeBatchRequest, type IncomingRequest } from './stream-codec.js';
import { BatchBudget, batchBudgetDefaults } from './batch-budget.js';
import type { ApiTokens } from '../transport/credentials.js';

const unauthenticated = (): Partial<grpc.ServiceError> =>
  toServiceError(new RingLimitError('UNAUTHENTICATED', 'a bearer token this node accepts is required (authorization: Bearer <token>)'));

/** Bytes past which an AllowBatch request counts as large (about 100 requests). */
const SMALL_BATCH_BYTES = batchBudgetDefaults.smallBatchItems * 64;

function decideItem(backend: PublicApiBackend, item: IncomingRequest): Promise<Reservation> {
  try {
    if (item.timestampMs !== undefined && Number.isFinite(item.timestampMs)) backend.recordCallerTime(item.timestampMs);
    return Promise.resolve(backend.decide(item.request, item.maxWaitMs));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A unary Allow, decoded by the generated code: the same decision as a batch item's. */
function decideOne(backend: PublicApiBackend, w: WireAllowRequest): Promise<Reservation> {
  if (typeof w !== 'object' || w === null) return Promise.reject(new RingLimitError('INVALID_ARGUMENT', 'request: missing', 'request'));
  return decideItem(backend, { id: 0, request: fromWire(w), maxWaitMs: w.maxWaitMs, timestampMs: w.timestampMs });
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
    allowBatch: (call: grpc.ServerUnaryCall<Buffer, { results: WireAllowBatchItem[] }>, callback: grpc.sendUnaryData<{ results: WireAllowBatchItem[] }>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      const bytes = call.request;
      // Refused before it is decoded: a flood of large batches costs little more than its bytes.
      const large = bytes.length > SMALL_BATCH_BYTES;
      if (large && !budget.admit(Infinity)) {
        callback(toServiceError(new RingLimitError('RESOURCE_EXHAUSTED', `busy with large batches: retry, or send at most ${batchBudgetDefaults.smallBatchItems} requests per batch`)));
        return;
      }
      const started = large ? performance.now() : 0;
      let requests: IncomingRequest[];
      try {
        requests = decodeBatchRequest(bytes);
      } catch (error) {
        callback(toServiceError(error instanceof RingLimitError ? error : new RingLimitError('INVALID_ARGUMENT', 'malformed AllowBatch request')));
        return;
      }
      const answers = Promise.all(
        requests.map((item) =>
          decideItem(backend, item).then(
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
