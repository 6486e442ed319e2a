import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiter } from '../../src/limiter/create.js';
import { redisStore } from '../../src/redis/redis-store.js';
import { keySlot } from '../../src/redis/slot.js';
import { freePort } from '../../bench/peers/redis.js';
import { RedisProcess } from './redis-server.js';

const run = promisify(execFile);

let dir: string;
let nodes: RedisProcess[] = [];
let cluster: Cluster;

/** Three masters on 127.0.0.1 (each with a free client port and a free bus port), slots spread by redis-cli. */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ringlimit-redis-cluster-'));
  nodes = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const busPort = await freePort();
    nodes.push(
      await RedisProcess.start({
        port,
        args: ['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir, '--cluster-node-timeout', '5000'],
      }),
    );
  }
  await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
  const deadline = Date.now() + 20_000;
  for (const node of nodes) {
    for (;;) {
      const { stdout } = await run('redis-cli', ['-p', String(node.port), 'cluster', 'info']);
      if (stdout.includes('cluster_state:ok')) break;
      if (Date.now() > deadline) throw new Error(`cluster not ok on ${node.port}: ${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  cluster = new Cluster([{ host: '127.0.0.1', port: nodes[0]!.port }]);
  await new Promise<void>((resolve, reject) => {
    cluster.once('ready', () => resolve());
    cluster.once('error', reject);
  });
}, 60_000);

afterAll(async () => {
  cluster?.disconnect();
  for (const node of nodes) await node.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('on a real Redis Cluster (3 masters on 127.0.0.1)', () => {
  it('computes the slot Redis computes, hash tags included', async () => {
    const store = redisStore({ client: cluster });
    for (const [action, key] of [
      ['login', 'alice'],
      ['api', 'user{42}'],
      ['a{b', 'c'],
      ['x', ''],
      ['search', 'ünïcødé'],
    ] as const) {
      const redisKey = store.keyOf(action, key);
      const { stdout } = await run('redis-cli', ['-p', String(nodes[0]!.port), 'cluster', 'keyslot', redisKey]);
      expect(keySlot(redisKey), redisKey).toBe(Number(stdout.trim()));
    }
    // One user's actions share a slot: the user key is the hash tag.
    expect(keySlot(store.keyOf('login', 'bob'))).toBe(keySlot(store.keyOf('api', 'bob')));
  });

  it('decides keys spread over every master exactly, one script call per slot and turn', async () => {
    const store = redisStore({ client: cluster, prefix: `c${Date.now()}:` });
    const limiter = createLimiter({ store, whenUnavailable: 'throw' });
    const users = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const calls = users.flatMap((key) => ['login', 'api'].flatMap((action) => Array.from({ length: 7 }, () => limiter.allow({ key, action, limit: 5, windowMs: 86_400_000 }).then((d) => `${action}/${key}/${d.allowed}`))));
    const outcomes = await Promise.all(calls);
    for (const key of users) {
      for (const action of ['login', 'api']) expect(outcomes.filter((o) => o === `${action}/${key}/true`), `${action}/${key}`).toHaveLength(5);
    }
    // 560 decisions, 40 users: far fewer script calls than decisions (a user's actions share one).
    expect(store.counters.scriptCalls).toBeLessThanOrEqual(41 + 1);
    const slots = new Set(users.map((key) => keySlot(store.keyOf('login', key))));
    expect(slots.size).toBeGreaterThan(30);
    await limiter.close();
  });
});
