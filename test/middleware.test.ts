import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/common/clock.js';
import { createLimiter } from '../src/limiter/create.js';
import type { Limiter } from '../src/limiter/limiter.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';
import { rateLimit as expressRateLimit } from '../src/middleware/express.js';
import { rateLimit as fastifyRateLimit } from '../src/middleware/fastify.js';
import { clientAddress, defaultAlgorithm } from '../src/middleware/core.js';

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function expressApp(options: Parameters<typeof expressRateLimit>[0]): Promise<string> {
  const app = express();
  app.use(expressRateLimit(options));
  app.get('/hello', (_req, res) => {
    res.json({ hello: 'world' });
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function fastifyApp(options: Parameters<typeof fastifyRateLimit>[0]): Promise<string> {
  const app = Fastify();
  app.addHook('onRequest', fastifyRateLimit(options));
  app.get('/hello', async () => ({ hello: 'world' }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

const MINUTE = 60_000;

/**
 * A clock at the start of a minute window (windows are aligned to the clock), moved only by
 * the test: where a request falls in its window never depends on how fast the machine runs.
 */
const minuteStart = (): ManualClock => new ManualClock(Math.ceil(Date.now() / MINUTE) * MINUTE);

function limiter(clock: ManualClock): Limiter {
  const l = createLimiter({ clock });
  closers.push(() => l.close());
  return l;
}

for (const [framework, start] of [
  ['Express 5', expressApp],
  ['Fastify 5', fastifyApp],
] as const) {
  describe(`${framework} middleware`, () => {
    it('sends the IETF RateLimit-Policy and RateLimit headers on every response, and 429 with Retry-After past the limit', async () => {
      const clock = minuteStart();
      const base = await start({ limiter: limiter(clock), clock, limit: 3, windowMs: MINUTE, action: 'hello', legacyHeaders: true });
      const responses = [];
      for (let i = 0; i < 4; i++) {
        responses.push(await fetch(`${base}/hello`));
        clock.advance(1_000);
      }
      expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 429]);
      expect(responses[0]!.headers.get('ratelimit-policy')).toBe('"hello";q=3;w=60');
      // t: seconds until the window ends and the quota is back (fixed window, the default).
      expect(responses[0]!.headers.get('ratelimit')).toBe('"hello";r=2;t=60');
      expect(responses[2]!.headers.get('ratelimit')).toBe('"hello";r=0;t=58');
      expect(responses[0]!.headers.get('x-ratelimit-limit')).toBe('3');
      expect(responses[0]!.headers.get('x-ratelimit-remaining')).toBe('2');
      expect(responses[0]!.headers.get('x-ratelimit-reset')).toBe(String((clock.now() - 4_000 + MINUTE) / 1000));
      const limited = responses[3]!;
      expect(limited.headers.get('retry-after')).toBe('57');
      expect(await limited.json()).toMatchObject({ error: 'too many requests' });
      expect(await responses[0]!.json()).toEqual({ hello: 'world' });
    });

    it('keys by a header of the caller’s choosing, and fails open or closed when the limiter cannot answer', async () => {
      const clock = minuteStart();
      const base = await start({ limiter: limiter(clock), clock, limit: 1, windowMs: MINUTE, key: (req) => String(req.headers['x-user'] ?? 'anonymous') });
      expect((await fetch(`${base}/hello`, { headers: { 'x-user': 'a' } })).status).toBe(200);
      expect((await fetch(`${base}/hello`, { headers: { 'x-user': 'a' } })).status).toBe(429);
      expect((await fetch(`${base}/hello`, { headers: { 'x-user': 'b' } })).status).toBe(200);
      const broken = { allow: () => Promise.reject(new Error('cluster down')), reserve: () => Promise.reject(new Error('cluster down')) };
      const open = await start({ limiter: broken, limit: 1, windowMs: 1_000, failOpen: true });
      expect((await fetch(`${open}/hello`)).status).toBe(200);
      const closed = await start({ limiter: broken, limit: 1, windowMs: 1_000 });
      expect((await fetch(`${closed}/hello`)).status).toBe(503);
    });

    it('"100 per minute" means 100, as with express-rate-limit: 105 requests 30 ms apart get 100 × 200 and 5 × 429 until the minute ends; a token bucket (asked for) would refill meanwhile', async () => {
      const clock = minuteStart();
      const base = await start({ limiter: limiter(clock), clock, limit: 100, windowMs: MINUTE });
      const statuses: number[] = [];
      let first: Response | undefined;
      let last: Response | undefined;
      for (let i = 0; i < 105; i++) {
        last = await fetch(`${base}/hello`);
        first ??= last;
        statuses.push(last.status);
        clock.advance(30);
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(100);
      expect(statuses.slice(100)).toEqual([429, 429, 429, 429, 429]);
      expect(first!.headers.get('ratelimit-policy')).toBe('"http";q=100;w=60');
      expect(first!.headers.get('ratelimit')).toBe('"http";r=99;t=60');
      expect(last!.headers.get('ratelimit')).toBe('"http";r=0;t=57');
      expect(last!.headers.get('retry-after')).toBe('57'); // the window's end, as express-rate-limit's Retry-After
      clock.advance(MINUTE - 105 * 30);
      const next = await fetch(`${base}/hello`);
      expect(next.status).toBe(200);
      expect(next.headers.get('ratelimit')).toBe('"http";r=99;t=60');

      const bucketClock = minuteStart();
      const bucket = await start({ limiter: limiter(bucketClock), clock: bucketClock, limit: 100, windowMs: MINUTE, algorithm: 'token-bucket' });
      let allowed = 0;
      for (let i = 0; i < 105; i++) {
        if ((await fetch(`${bucket}/hello`)).status === 200) allowed++;
        bucketClock.advance(30);
      }
      expect(allowed).toBe(105); // 100 at once, then one refilled every 600 ms
    });
  });
}

describe('the middleware’s algorithm', () => {
  it('fixed-window when the options give the limit; token-bucket with a burst; the option as given; the policy’s when the limit comes from the policies', () => {
    expect(defaultAlgorithm({ limit: 100 })).toBe('fixed-window');
    expect(defaultAlgorithm({ limit: 100, burst: 20 })).toBe('token-bucket');
    expect(defaultAlgorithm({ limit: 100, algorithm: 'sliding-window' })).toBe('sliding-window');
    expect(defaultAlgorithm({})).toBeUndefined();
  });
});

describe('the middleware with a node, and the throttle mode', () => {
  let node: RingLimitNode | undefined;
  afterEach(async () => {
    await node?.stop({ graceful: false });
  });

  it('waits instead of refusing in mode wait (token bucket: one request per 200 ms here)', async () => {
    node = await createNode();
    const base = await expressApp({ limiter: node, limit: 5, windowMs: 1_000, burst: 1, action: 'throttled', mode: 'wait', maxWaitMs: 2_000 });
    const started = Date.now();
    const statuses = await Promise.all(Array.from({ length: 4 }, () => fetch(`${base}/hello`).then((r) => r.status)));
    expect(statuses).toEqual([200, 200, 200, 200]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500); // the 4th waited ~600 ms
  });
});

describe('clientAddress', () => {
  it('takes the socket address, or with trustProxy the address that many hops from the right of X-Forwarded-For', () => {
    const req = (xff: string | undefined) => ({ headers: xff === undefined ? {} : { 'x-forwarded-for': xff }, socket: { remoteAddress: '10.0.0.9' } });
    expect(clientAddress(req('1.1.1.1, 2.2.2.2'), false)).toBe('10.0.0.9');
    expect(clientAddress(req('1.1.1.1, 2.2.2.2'), true)).toBe('2.2.2.2');
    expect(clientAddress(req('6.6.6.6, 1.1.1.1, 2.2.2.2'), 2)).toBe('1.1.1.1'); // a forged leftmost entry is ignored
    expect(clientAddress(req(undefined), 1)).toBe('10.0.0.9');
  });
});
