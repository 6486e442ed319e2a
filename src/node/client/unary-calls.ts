import * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError, invalidArgument, type ErrorCode } from '../../common/errors.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import { decodeAllowResponse, encodeAllowRequest, encodeSetRemainingRequest, unwritable } from '../api/allow-codec.js';
import type { WireHealth } from '../api/proto.js';
import { clientMetadata, isToken } from '../transport/credentials.js';
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

/** The client's unary calls, to its preferred node: an operator's calls on a key, and Health; a failed one rejects with a typed error. */
export class UnaryCalls {
  constructor(
    private readonly pool: LinkPool,
    private readonly timeoutMs: number,
    private readonly metadata: grpc.Metadata,
  ) {}

  /**
   * Inspect, Reset or SetRemaining (`remaining` set), carried by the node to the key's
   * owner; the node logs the token's fingerprint as the caller. The request is written by
   * the same codec as the stream's.
   */
  onKey(method: 'inspect' | 'reset' | 'setRemaining', request: RateLimitRequest, remaining: number | undefined, options: AdminCallOptions): Promise<Reservation> {
    if (typeof request !== 'object' || request === null) return Promise.reject(invalidArgument('request', 'must be an object with key and the key\'s limits'));
    const token = (options as AdminCallOptions | undefined)?.adminToken;
    if (!isToken(token)) return Promise.reject(invalidArgument('adminToken', 'must be printable characters without spaces'));
    let message: Buffer;
    try {
      message = method === 'setRemaining' ? encodeSetRemainingRequest(request, remaining!) : encodeAllowRequest(request);
    } catch {
      return Promise.reject(unwritable(request));
    }
    const client = this.pool.preferredLink.client;
    return new Promise((resolve, reject) => {
      client[method](message, clientMetadata(token), { deadline: Date.now() + this.timeoutMs }, (error, response) => {
        if (error !== null || response === undefined) return reject(errorOfCall(error));
        try {
          resolve(decodeAllowResponse(response));
        } catch (malformed) {
          reject(new RingLimitError('UNAVAILABLE', (malformed as Error).message));
        }
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
