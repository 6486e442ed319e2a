import { resolveMiddleware, type RateLimitOptions, type RequestLike } from './core.js';

export { clientAddress, type DecisionSource, type RateLimitOptions } from './core.js';

/** What the hook uses of a Fastify reply. */
export interface FastifyReplyLike {
  header(name: string, value: string): unknown;
  code(status: number): FastifyReplyLike;
  send(body: unknown): unknown;
}

/**
 * A Fastify onRequest hook (Fastify 4 and 5):
 * `app.addHook('onRequest', rateLimit({ limiter, limit: 100, windowMs: 60_000 }))`, or per
 * route with `{ onRequest: rateLimit(...) }`. Every response gets the RateLimit-Policy and
 * RateLimit headers; a limited request gets 429 with Retry-After; see core.ts for the options.
 */
export function rateLimit<Req extends RequestLike = RequestLike>(options: RateLimitOptions<Req>): (request: Req, reply: FastifyReplyLike) => Promise<FastifyReplyLike | undefined> {
  const middleware = resolveMiddleware(options);
  return async (request, reply) => {
    const verdict = await middleware.decide(request);
    for (const [name, value] of verdict.headers) reply.header(name, value);
    if (verdict.pass) return undefined;
    reply.code(verdict.status).send(verdict.body);
    return reply; // an async hook that returns the reply stops the request here
  };
}
