import { resolveMiddleware, type RateLimitOptions, type RequestLike } from './core.js';

export { clientAddress, type DecisionSource, type RateLimitOptions } from './core.js';

/** What the middleware uses of an Express response. */
export interface ExpressResponseLike {
  setHeader(name: string, value: string): unknown;
  status(code: number): ExpressResponseLike;
  json(body: unknown): unknown;
}

/**
 * Express middleware (Express 4 and 5): `app.use(rateLimit({ limiter, limit: 100, windowMs: 60_000 }))`.
 * Every response gets the RateLimit-Policy and RateLimit headers; a limited request gets
 * 429 with Retry-After (or waits, with mode 'wait'); see core.ts for the options.
 */
export function rateLimit<Req extends RequestLike = RequestLike>(options: RateLimitOptions<Req>): (req: Req, res: ExpressResponseLike, next: (error?: unknown) => void) => void {
  const middleware = resolveMiddleware(options);
  return (req, res, next) => {
    middleware.decide(req).then((verdict) => {
      for (const [name, value] of verdict.headers) res.setHeader(name, value);
      if (verdict.pass) next();
      else res.status(verdict.status).json(verdict.body);
    }, next);
  };
}
