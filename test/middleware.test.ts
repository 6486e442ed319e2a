import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createLimiter } from '../src/limiter/create.js';
import type { Limiter } from '../src/limiter/limiter.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';
import { rateLimit as expressRateLimit } from '../src/middleware/express.js';
import { rateLimit as fastifyRateLimit } from '../src/middleware/fastify.js';
import { clientAddress } from '../src/middleware/core.js';

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

function limiter(): Limiter {
  const l = createLimiter();
  closers.push(() => l.close());
  return l;
}

for (const [framework, start] of [
  ['Express 5', expressApp],
  ['Fastify 5', fastifyApp],
] as const) {
  describe(`${framework} middleware`, () => {
    it('sends the IETF RateLimit-Policy and RateLimit headers on every response, and 429 with Retry-After past the limit', async () => {
      const base = await start({ limiter: limiter(), limit: 3, windowMs: 60_000, action: 'hello', legacyHeaders: true });
      const responses = [];
      for (let i = 0; i < 4; i++) responses.push(await fetch(`${base}/hello`));
      expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 429]);
      expect(responses[0]!.headers.get('ratelimit-policy')).toBe('"hello";q=3;w=60');
      // t: seconds until the key is back to its full allowance (a token bucket refills 1 of 3 in 20 s).
      expect(responses[0]!.headers.get('ratelimit')).toMatch(/^"hello";r=2;t=(20|21)$/);
      expect(responses[2]!.headers.get('ratelimit')).toMatch(/^"hello";r=0;t=\d+$/);
      expect(responses[0]!.headers.get('x-ratelimit-limit')).toBe('3');
      expect(responses[0]!.headers.get('x-ratelimit-remaining')).toBe('2');
      const limited = responses[3]!;
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await limited.json()).toMatchObject({ error: 'too many requests' });
      expect(await responses[0]!.json()).toEqual({ hello: 'world' });
    });

    it('keys by a header of the caller’s choosing, and fails open or closed when the limiter cannot answer', async () => {
      const base = await start({ limiter: limiter(), limit: 1, windowMs: 60_000, key: (req) => String(req.headers['x-user'] ?? 'anonymous') });
      expect((await fetch(`${base}/hello`, { headers: { 'x-user': 'a' } })).status).toBe(200);
      expect((await fetch(`${base}/hello`, { headers: { 'x-user': 'a' } })).status).toBe(429);
      expect((await fetch(`${base}/hello`, { headers: { 'x-user': 'b' } })).status).toBe(200);
      const broken = { allow: () => Promise.reject(new Error('cluster down')), reserve: () => Promise.reject(new Error('cluster down')) };
      const open = await start({ limiter: broken, limit: 1, windowMs: 1_000, failOpen: true });
      expect((await fetch(`${open}/hello`)).status).toBe(200);
      const closed = await start({ limiter: broken, limit: 1, windowMs: 1_000 });
      expect((await fetch(`${closed}/hello`)).status).toBe(503);
    });
  });
}

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
