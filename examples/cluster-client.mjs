// A standalone cluster's client, with weighted users (npm run build first; start nodes with
// `node dist/cli.js serve ...` as in the README).
//   NODES=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 node examples/cluster-client.mjs
import { RingLimitClient } from 'ringlimit';

const client = new RingLimitClient({ nodes: (process.env.NODES ?? '127.0.0.1:7001').split(',') });
const users = [
  { key: 'free-user', weight: 1 },
  { key: 'pro-user', weight: 3 },
  { key: 'partner', weight: 10 },
];
for (const { key, weight } of users) {
  let allowed = 0;
  for (let i = 0; i < 50; i++) if ((await client.allow({ key, action: 'upload', limit: 5, windowMs: 60_000, weight })).allowed) allowed++;
  console.log(`${key.padEnd(10)} weight ${String(weight).padStart(2)}: ${allowed} of 50 allowed (limit 5 × weight)`);
}
client.close();
