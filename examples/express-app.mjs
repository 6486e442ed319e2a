// An Express app with ringlimit's middleware and an embedded node (npm run build first).
//
//   node examples/express-app.mjs                 # a lone node, HTTP on :3000
//   JOIN=127.0.0.1:7946 node examples/express-app.mjs   # join a cluster's gossip port instead
//   curl -i localhost:3000/search                  # see RateLimit-Policy / RateLimit, then 429 (keyed by your IP)
//   curl -i -H 'x-user: alice' -H 'x-plan: pro' localhost:3000/search   # alice, on the pro plan: 5 x the limit
//
// Who is limited is the x-user header (an authenticated user id in a real app), else the
// client's IP; x-plan: pro puts the caller in the policies' pro group, which weighs 5.
//
// --self-test: starts, sends requests to itself, checks the headers and exits (used by the tests).
import express from 'express';
import { createNode } from 'ringlimit';
import { rateLimit } from 'ringlimit/express';

const selfTest = process.argv.includes('--self-test');
const node = await createNode({
  // localClusterKey: on one host, the key `ringlimit serve` nodes of this user share (docs/gossip-hardening.md).
  ...(process.env.JOIN ? { join: process.env.JOIN.split(','), port: 0, gossipPort: 0, localClusterKey: true } : {}),
  // Limits declared once: 10 searches per 10 s, pro users weigh 5 (50 per 10 s).
  policies: { defaults: { search: { limit: 10, window: '10s' } }, groups: { pro: { weight: 5 } } },
});

const app = express();
app.use(
  '/search',
  rateLimit({
    limiter: node,
    action: 'search',
    windowMs: 10_000, // for the RateLimit-Policy header; the limit itself comes from the policies
    key: (req) => (typeof req.headers['x-user'] === 'string' ? `user:${req.headers['x-user']}` : `ip:${req.ip}`),
    group: (req) => (req.headers['x-plan'] === 'pro' ? 'pro' : undefined),
    legacyHeaders: true,
  }),
);
app.get('/search', (_req, res) => res.json({ results: ['…'] }));

const server = app.listen(selfTest ? 0 : Number(process.env.PORT ?? 3000), '127.0.0.1', async () => {
  const { port } = server.address();
  if (!selfTest) {
    console.log(`listening on http://127.0.0.1:${port} — try: curl -i localhost:${port}/search`);
    return;
  }
  const statuses = [];
  let headers;
  for (let i = 0; i < 11; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/search`);
    statuses.push(res.status);
    headers ??= { policy: res.headers.get('ratelimit-policy'), ratelimit: res.headers.get('ratelimit') };
  }
  // Another user, on the pro plan, as the instructions above: a key of their own, 5 x the limit.
  const pro = await fetch(`http://127.0.0.1:${port}/search`, { headers: { 'x-user': 'alice', 'x-plan': 'pro' } });
  console.log(JSON.stringify({ statuses, headers, proStatus: pro.status, proLimit: pro.headers.get('x-ratelimit-limit'), proRemaining: pro.headers.get('x-ratelimit-remaining') }));
  server.close();
  await node.stop({ graceful: false });
});
