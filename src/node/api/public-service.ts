import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { toServiceError, type PublicApiBackend } from './backend.js';
import { rateLimiterServiceWithRawMessages, type WireHealth, type WireMembers, type WirePoliciesInfo } from './proto.js';
import { serveAllowStream, type AllowStreamCall } from './stream-service.js';
import { decodeAllowRequest, decodeSetRemainingRequest, encodeAllowResponse, type IncomingRequest } from './allow-codec.js';
import { SMALL_BATCH_BYTES, answerBatch } from './grpc-batch.js';
import type { CallerLedger } from './caller-ledger.js';
import { endLarge, startLarge } from './large-batches.js';
import type { ApiTokens } from '../transport/credentials.js';

const unauthenticated = (): Partial<grpc.ServiceError> =>
  toServiceError(new RingLimitError('UNAUTHENTICATED', 'a bearer token this node accepts is required (authorization: Bearer <token>)'));

function decideItem(backend: PublicApiBackend, item: IncomingRequest): Promise<Reservation> {
  try {
    if (item.timestampMs !== undefined && Number.isFinite(item.timestampMs)) backend.recordCallerTime(item.timestampMs);
    return Promise.resolve(backend.decide(item.request, item.maxWaitMs));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A unary call's request, decoded; a malformed one fails the call with INVALID_ARGUMENT. */
function decoded<T>(decode: (bytes: Uint8Array) => T, bytes: Buffer, callback: grpc.sendUnaryData<Uint8Array>): T | undefined {
  try {
    return decode(bytes);
  } catch (error) {
    callback(toServiceError(error));
    return undefined;
  }
}

/** Sends a unary call's decision, or its typed error. */
function answer(decision: Promise<Reservation>, callback: grpc.sendUnaryData<Uint8Array>): void {
  decision.then(
    (r) => callback(null, encodeAllowResponse(r)),
    (error: unknown) => callback(toServiceError(error)),
  );
}

const notOnLedger = (): RingLimitError => new RingLimitError('INTERNAL', 'call not on the caller ledger (the server lacks the caller-bounds interceptor)');

/**
 * The ringlimit.v1.RateLimiter service, added to a node's gRPC server; with `tokens`, every
 * call must carry one. The server must run callerBoundsInterceptor(ledger): every call is on
 * the ledger, and work is refused for a connection past its share.
 */
export function addPublicApi(server: grpc.Server, backend: PublicApiBackend, tokens: ApiTokens, adminTokens: ApiTokens, ledger: CallerLedger): void {
  /** Admin calls need an admin token; a node without admin tokens refuses them all. */
  const admin = (call: { metadata: grpc.Metadata }): Partial<grpc.ServiceError> | undefined =>
    adminTokens.required && adminTokens.allows(call.metadata)
      ? undefined
      : toServiceError(new RingLimitError('UNAUTHENTICATED', adminTokens.required ? 'an admin token this node accepts is required (authorization: Bearer <token>)' : 'admin calls are off: start the node with --admin-token-file'));
  /** Inspect, Reset, SetRemaining: an admin token, then the key's owner; the caller named in the logs by token and address. */
  const adminOnKey = (call: grpc.ServerUnaryCall<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>, op: 'inspect' | 'reset' | 'set'): void => {
    const refused = admin(call);
    if (refused !== undefined) return callback(refused);
    const message = op === 'set' ? decoded(decodeSetRemainingRequest, call.request, callback) : decoded(decodeAllowRequest, call.request, callback);
    if (message === undefined) return;
    const by = `${adminTokens.identifyCall(call.metadata) ?? 'admin'} from ${call.getPeer()} (gRPC)`;
    answer(backend.admin(op, message.request, 'remaining' in message ? message.remaining : undefined, by), callback);
  };
  const budget = ledger.largeBatches;
  server.addService(rateLimiterServiceWithRawMessages(), {
    allow: (call: grpc.ServerUnaryCall<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      budget.singleCall();
      const item = decoded(decodeAllowRequest, call.request, callback);
      if (item !== undefined) answer(decideItem(backend, item), callback);
    },
    allowBatch: (call: grpc.ServerUnaryCall<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      const bytes = call.request;
      const connection = ledger.connection(call.getPeer());
      if (connection === undefined) return callback(toServiceError(notOnLedger()));
      // A large one is refused before it is decoded: a flood of large batches costs little more than its bytes.
      const large = bytes.length > SMALL_BATCH_BYTES;
      connection.lastRequestLarge = large;
      if (large) {
        const refusal = startLarge(ledger);
        if (refusal !== undefined) return callback(toServiceError(refusal));
      } else {
        budget.singleCall();
      }
      answerBatch(backend, ledger, connection, bytes, large, () => call.cancelled)
        .then(
          (answer) => (large ? budget.charged(() => callback(null, answer)) : callback(null, answer)),
          (error: unknown) => callback(toServiceError(error)),
        )
        .finally(() => {
          if (large) endLarge(ledger);
        });
    },
    allowStream: (call: AllowStreamCall) => {
      const connection = ledger.connection(call.getPeer());
      if (tokens.allows(call.metadata) && connection !== undefined) return serveAllowStream(backend, call, ledger, connection);
      call.on('error', () => undefined);
      call.emit('error', connection === undefined ? toServiceError(notOnLedger()) : unauthenticated());
    },
    members: (call: grpc.ServerUnaryCall<object, WireMembers>, callback: grpc.sendUnaryData<WireMembers>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      callback(null, backend.members());
    },
    health: (call: grpc.ServerUnaryCall<object, WireHealth>, callback: grpc.sendUnaryData<WireHealth>) => {
      if (!tokens.allows(call.metadata)) return callback(unauthenticated());
      callback(null, backend.health());
    },
    setPolicies: (call: grpc.ServerUnaryCall<{ document?: string }, WirePoliciesInfo>, callback: grpc.sendUnaryData<WirePoliciesInfo>) => {
      const refused = admin(call);
      if (refused !== undefined) return callback(refused);
      // Loaded off the event loop (a large document takes seconds): answered when it is in force.
      Promise.resolve()
        .then(() => backend.setPolicies(call.request.document ?? ''))
        .then(
          (info) => callback(null, info),
          (error: unknown) => callback(toServiceError(error)),
        );
    },
    getPolicies: (call: grpc.ServerUnaryCall<object, WirePoliciesInfo>, callback: grpc.sendUnaryData<WirePoliciesInfo>) => {
      const refused = admin(call);
      if (refused !== undefined) return callback(refused);
      callback(null, backend.getPolicies());
    },
    inspect: (call: grpc.ServerUnaryCall<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>) => adminOnKey(call, callback, 'inspect'),
    reset: (call: grpc.ServerUnaryCall<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>) => adminOnKey(call, callback, 'reset'),
    setRemaining: (call: grpc.ServerUnaryCall<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>) => adminOnKey(call, callback, 'set'),
    setLoadFactor: (call: grpc.ServerUnaryCall<{ factor?: number }, { inForce: number }>, callback: grpc.sendUnaryData<{ inForce: number }>) => {
      const refused = admin(call);
      if (refused !== undefined) return callback(refused);
      try {
        callback(null, { inForce: backend.setLoadFactor(call.request.factor ?? 0) });
      } catch (error) {
        callback(toServiceError(error));
      }
    },
  });
}
