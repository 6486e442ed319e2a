import { systemClock, type Clock } from '../common/clock.js';
import { RingLimitError, invalidArgument } from '../common/errors.js';
import type { Algorithm, Decision, RateLimitRequest, Reservation } from '../limiter/types.js';

/**
 * What decides: a bare limiter (createLimiter), an embedded node (createNode) or a
 * RingLimitClient — each has allow() and reserve(), synchronous or not.
 */
export interface DecisionSource {
  allow(request: RateLimitRequest): Decision | Promise<Decision>;
  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Reservation | Promise<Reservation>;
}

/** The parts of an HTTP request the middleware reads (Express and Fastify requests both have them). */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
  socket: { remoteAddress?: string | undefined };
}

export interface RateLimitOptions<Req extends RequestLike = RequestLike> {
  /** The limiter, node or client that decides. */
  limiter: DecisionSource;
  /** Units per window (omit to take them from the limiter's policies). */
  limit?: number;
  windowMs?: number;
  /**
   * How `limit` per `windowMs` is counted when the options give the limit (see
   * defaultAlgorithm): 'fixed-window' by default, as express-rate-limit counts: at most `limit`
   * requests per window, the headers' t counting down to the window's end. Limits from the
   * policies keep the policy's algorithm.
   */
  algorithm?: Algorithm;
  /** A token bucket's capacity; given without an algorithm, the algorithm is 'token-bucket'. */
  burst?: number;
  /** What is limited: a name, or one per request (e.g. per route). Default "http". */
  action?: string | ((req: Req) => string);
  /** Who is limited. Default: the client's IP (see trustProxy). */
  key?: (req: Req) => string;
  /** The caller's group for the policies. */
  group?: (req: Req) => string | undefined;
  /** Units a request takes. Default 1. */
  cost?: (req: Req) => number;
  /**
   * Proxies in front of the app whose X-Forwarded-For to believe: the client is the address
   * that many hops from the right (true: 1). Default false: the socket's address.
   */
  trustProxy?: boolean | number;
  /** reject (default): answer 429 at once; wait: hold the request up to maxWaitMs, then 429. */
  mode?: 'reject' | 'wait';
  maxWaitMs?: number;
  /** When the limiter cannot answer (cluster unavailable): let the request through (true) or answer 503 (false, default). */
  failOpen?: boolean;
  /** Also send X-RateLimit-Limit, -Remaining and -Reset (epoch seconds). Default false. */
  legacyHeaders?: boolean;
  /** The policy's name in the RateLimit-Policy and RateLimit headers. Default: the action. */
  policyName?: string;
  /** The 429 body. Default { error: "too many requests", retryAfterSeconds }. */
  message?: unknown;
  /** The clock the headers' seconds are counted on: the limiter's (default: the system clock, as createLimiter's). */
  clock?: Clock;
}

/**
 * The algorithm of a request whose limit the middleware options give: the option if set;
 * 'token-bucket' when a burst is given (only a bucket has one); else 'fixed-window', so that
 * "100 per minute" admits 100 in the window and not one more, as a user of express-rate-limit
 * expects (a token bucket would refill during the minute: 105 requests 30 ms apart all pass).
 * undefined when the limit comes from the policies: the policy's algorithm applies.
 */
export function defaultAlgorithm(options: Pick<RateLimitOptions, 'limit' | 'algorithm' | 'burst'>): Algorithm | undefined {
  if (options.algorithm !== undefined) return options.algorithm;
  if (options.limit === undefined) return undefined;
  return options.burst === undefined ? 'fixed-window' : 'token-bucket';
}

/** What the middleware decided for one request: headers to set and, unless it passes, the answer to send. */
export interface Verdict {
  headers: [string, string][];
  pass: boolean;
  status: number;
  body: unknown;
}

export interface ResolvedMiddleware<Req extends RequestLike> {
  decide(req: Req): Promise<Verdict>;
}

const quoted = (name: string): string => `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/** The client's address: the socket's, or with trustProxy the one that many hops from the right of X-Forwarded-For. */
export function clientAddress(req: RequestLike, trustProxy: boolean | number): string {
  const socketAddress = req.socket.remoteAddress ?? 'unknown';
  const hops = trustProxy === true ? 1 : trustProxy === false ? 0 : trustProxy;
  if (hops <= 0) return socketAddress;
  const header = req.headers['x-forwarded-for'];
  const chain = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').map((s) => s.trim()).filter((s) => s !== '');
  // The last `hops` entries were added by our proxies; the one before the first of them is the client.
  return chain.length >= hops ? chain[chain.length - hops]! : socketAddress;
}

/**
 * The framework-free part of the middleware: the request's key, action and cost, the
 * decision, and the IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers-11):
 *   RateLimit-Policy: "<name>";q=<limit>;w=<window seconds>
 *   RateLimit: "<name>";r=<remaining>;t=<seconds until the quota resets>
 * plus Retry-After on 429, and optionally the legacy X-RateLimit-* headers.
 */
export function resolveMiddleware<Req extends RequestLike>(options: RateLimitOptions<Req>): ResolvedMiddleware<Req> {
  if (typeof options !== 'object' || options === null || typeof options.limiter?.allow !== 'function') throw invalidArgument('limiter', 'give a limiter, node or client (with allow and reserve)');
  const mode = options.mode ?? 'reject';
  if (mode !== 'reject' && mode !== 'wait') throw invalidArgument('mode', "must be 'reject' or 'wait'");
  const maxWaitMs = options.maxWaitMs ?? 5_000;
  if (mode === 'wait' && !(maxWaitMs >= 0 && maxWaitMs <= 86_400_000)) throw invalidArgument('maxWaitMs', 'must be from 0 to 86400000');
  const trustProxy = options.trustProxy ?? false;
  const actionOf = typeof options.action === 'function' ? options.action : (): string => (options.action as string | undefined) ?? 'http';
  const keyOf = options.key ?? ((req: Req) => clientAddress(req, trustProxy));
  const algorithm = defaultAlgorithm(options);
  const clock = options.clock ?? systemClock;
  if (typeof clock.now !== 'function') throw invalidArgument('clock', 'must have a now() method');
  const { limiter } = options;

  const headersFor = (d: Decision, action: string, nowMs: number): [string, string][] => {
    const name = quoted(options.policyName ?? action);
    const resetSeconds = Math.max(0, Math.ceil((d.resetAtMs - nowMs) / 1000));
    const headers: [string, string][] = [['RateLimit', `${name};r=${Math.max(0, Math.floor(d.remaining))};t=${resetSeconds}`]];
    if (options.windowMs !== undefined) headers.unshift(['RateLimit-Policy', `${name};q=${d.limit};w=${Math.max(1, Math.round(options.windowMs / 1000))}`]);
    if (options.legacyHeaders === true) {
      headers.push(['X-RateLimit-Limit', String(d.limit)], ['X-RateLimit-Remaining', String(Math.max(0, Math.floor(d.remaining)))], ['X-RateLimit-Reset', String(Math.ceil(d.resetAtMs / 1000))]);
    }
    return headers;
  };

  return {
    async decide(req: Req): Promise<Verdict> {
      const action = actionOf(req);
      const request: RateLimitRequest = { key: keyOf(req), action };
      if (options.limit !== undefined) request.limit = options.limit;
      if (options.windowMs !== undefined) request.windowMs = options.windowMs;
      if (algorithm !== undefined) request.algorithm = algorithm;
      if (options.burst !== undefined) request.burst = options.burst;
      if (options.cost !== undefined) request.cost = options.cost(req);
      const group = options.group?.(req);
      if (group !== undefined) request.group = group;
      let decision: Decision;
      try {
        if (mode === 'wait') {
          const r = await limiter.reserve(request, { maxWaitMs });
          if (r.allowed && r.waitMs > 0) await new Promise((resolve) => setTimeout(resolve, r.waitMs));
          decision = r;
        } else {
          decision = await limiter.allow(request);
        }
      } catch (error) {
        if (error instanceof RingLimitError && error.code === 'INVALID_ARGUMENT') throw error; // a mistake in the options: the app should see it
        if (options.failOpen === true) return { headers: [], pass: true, status: 200, body: undefined };
        return { headers: [['Retry-After', '1']], pass: false, status: 503, body: { error: 'rate limiter unavailable' } };
      }
      const headers = headersFor(decision, action, clock.now());
      if (decision.allowed) return { headers, pass: true, status: 200, body: undefined };
      const retryAfterSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      headers.push(['Retry-After', String(retryAfterSeconds)]);
      return { headers, pass: false, status: 429, body: options.message ?? { error: 'too many requests', retryAfterSeconds } };
    },
  };
}
