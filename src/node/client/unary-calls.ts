import * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError, invalidArgument, type ErrorCode } from '../../common/errors.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import type { WireAllowRequest, WireHealth } from '../api/proto.js';
import { clientMetadata } from '../transport/credentials.js';
import type { LinkPool } from './link-pool.js';

/** An operator's call: the token of the nodes' --admin-token-file. */
export interface AdminCallOptions {
  adminToken: string;
}

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>(['INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'ABORTED', 'FAILED_PRECONDITION', 'UNAUTHENTICATED', 'INTERNAL']);

/** The typed error of a failed unary call: the node's code and field from its trailers, else one from the gRPC status. */
function errorOfCall(error: grpc.ServiceError | null): RingLimitError {
  if (error === null) return new RingLimitError('UNAVAILABLE', 'no response');
  const said = String(error.metadata?.get('ringlimit-code')[0] ?? '');
  const field = error.metadata?.get('ringlimit-field')[0];
  const code: ErrorCode = ERROR_CODES.has(said) ? (said as ErrorCode) : error.code === grpc.status.DEADLINE_EXCEEDED ? 'DEADLINE_EXCEEDED' : error.code === grpc.status.UNAUTHENTICATED ? 'UNAUTHENTICATED' : 'UNAVAILABLE';
  const details = error.details.startsWith(`${code}: `) ? error.details.slice(code.length + 2) : error.details;
  return code === 'INVALID_ARGUMENT' ? new RateLimitError(code, details, field === undefined ? undefined : String(field)) : new RingLimitError(code, details, field === undefined ? undefined : String(field));
}

/** A request in the unary API's shape (proto-loader's camelCase); the node validates every field. */
function wireRequestOf(r: RateLimitRequest): WireAllowRequest {
  const w: WireAllowRequest = { key: r.key };
  if (r.action !== undefined) w.action = r.action;
  if (r.limit !== undefined) w.limit = r.limit;
  if (r.windowMs !== undefined) w.windowMs = r.windowMs;
  if (r.calendar !== undefined) w.calendar = r.calendar;
  if (r.timeZone !== undefined) w.timeZone = r.timeZone;
  if (r.weight !== undefined) w.weight = r.weight;
  if (r.cost !== undefined) w.cost = r.cost;
  if (r.algorithm !== undefined) w.algorithm = r.algorithm;
  if (r.burst !== undefined) w.burst = r.burst;
  if (r.global !== undefined) w.global = r.global;
  if (r.group !== undefined) w.group = r.group;
  return w;
}

/** The client's unary calls, to its preferred node: an operator's calls on a key, and Health; a failed one rejects with a typed error. */
export class UnaryCalls {
  constructor(
    private readonly pool: LinkPool,
    private readonly timeoutMs: number,
    private readonly metadata: grpc.Metadata,
  ) {}

  /**
   * Inspect, Reset or SetRemaining (`remaining` set), carried by the node to the key's
   * owner; the node logs the token's fingerprint as the caller.
   */
  onKey(method: 'inspect' | 'reset' | 'setRemaining', request: RateLimitRequest, remaining: number | undefined, options: AdminCallOptions): Promise<Reservation> {
    if (typeof request !== 'object' || request === null) return Promise.reject(invalidArgument('request', 'must be an object with key and the key\'s limits'));
    const token = (options as AdminCallOptions | undefined)?.adminToken;
    if (typeof token !== 'string' || !/^[\x21-\x7e]{1,512}$/.test(token)) return Promise.reject(invalidArgument('adminToken', 'must be printable characters without spaces'));
    const wire = wireRequestOf(request);
    const message = method === 'setRemaining' ? { request: wire, remaining } : wire;
    const client = this.pool.preferredLink.client;
    return new Promise((resolve, reject) => {
      client[method](message, clientMetadata(token), { deadline: Date.now() + this.timeoutMs }, (error, response) => {
        if (error !== null || response === undefined) return reject(errorOfCall(error));
        resolve({ allowed: response.allowed, limit: response.limit, remaining: response.remaining, resetAtMs: response.resetAtMs, retryAfterMs: response.retryAfterMs, waitMs: response.waitMs });
      });
    });
  }

  health(nodeIndex: number): Promise<WireHealth> {
    const links = this.pool.configured;
    const client = links[nodeIndex % links.length]!.client;
    return new Promise((resolve, reject) => {
      client.health({}, this.metadata, { deadline: Date.now() + this.timeoutMs }, (error, response) =>
        error !== null || response === undefined ? reject(new RingLimitError('UNAVAILABLE', error?.details ?? 'no response')) : resolve(response),
      );
    });
  }
}
