import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChaosCluster } from '../../src/chaos/cluster.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import { builtCli } from './built-cli.js';

const CONVERGE_MS = 15_000;
const TEST_MS = 90_000;
const KEYS = Array.from({ length: 30 }, (_, i) => `user-${i}`);
const request = (key: string) => ({ key, action: 'upload', limit: 5, windowMs: 3_600_000 });

/**
 * Calls every key through each client, `rounds` times and, 20 ms apart, at least for `forMs`
 * (at most 1,000 rounds); counts what was allowed and what failed.
 */
async function hammer(clients: RingLimitClient[], rounds: number, forMs = 0): Promise<{ allowed: number; errors: number; messages: string[] }> {
  let allowed = 0;
  const messages: string[] = [];
  const until = Date.now() + forMs;
  for (let r = 0; r < 1_000 && (r < rounds || Date.now() < until); r++) {
    if (r >= rounds) await new Promise((resolve) => setTimeout(resolve, 20));
    for (const client of clients) {
      const answers = await Promise.allSettled(KEYS.map((key) => client.allow(request(key))));
      for (const a of answers) {
        if (a.status === 'fulfilled') allowed += a.value.allowed ? 1 : 0;
        else messages.push((a.reason as Error).message);
      }
    }
  }
  return { allowed, errors: messages.length, messages: messages.slice(0, 3) };
}

describe('real `serve` processes under whole-node failures', () => {
  let cliPath = '';
  let cluster: ChaosCluster | undefined;
  const clients: RingLimitClient[] = [];
  const dirs: string[] = [];

  beforeAll(() => {
    cliPath = builtCli();
  }, 150_000);

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await cluster?.close();
    cluster = undefined;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('kill -9 of 2 of 3 nodes: clients keep answering from the survivor, and with --replicas 2 no key gets its limit again', async () => {
    cluster = await ChaosCluster.start(3, { cliPath, harness: false, serveArgs: ['--replicas', '2'] });
    await cluster.waitForMembers(3, CONVERGE_MS);
    const addresses = cluster.grpcAddresses();
    const before = new RingLimitClient({ nodes: addresses });
    clients.push(before);
    expect((await hammer([before], 6)).allowed).toBe(KEYS.length * 5); // 5 of 6 calls per key
    await new Promise((r) => setTimeout(r, 500)); // replication (every 5 ms) has reached both replicas
    cluster.kill(1);
    cluster.kill(2);
    const after = new RingLimitClient({ nodes: addresses });
    clients.push(after);
    // From the kill on, through failure detection and the ring change: 4 s.
    const outcome = await hammer([before, after], 1, 4_000);
    expect(outcome.messages).toEqual([]);
    expect(outcome.allowed).toBe(0);
  }, TEST_MS);

  it('kill -9 of every node, then a restart on the same data dirs: periodic snapshots keep the counts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ringlimit-crash-'));
    dirs.push(dataDir);
    cluster = await ChaosCluster.start(3, { cliPath, harness: false, serveArgs: ['--data-dir', dataDir, '--snapshot-interval', '200ms'] });
    await cluster.waitForMembers(3, CONVERGE_MS);
    const client = new RingLimitClient({ nodes: cluster.grpcAddresses() });
    clients.push(client);
    expect((await hammer([client], 6)).allowed).toBe(KEYS.length * 5);
    await new Promise((r) => setTimeout(r, 1_000)); // several snapshot intervals
    for (const i of [0, 1, 2]) cluster.kill(i);
    for (const i of [0, 1, 2]) await cluster.restart(i);
    await cluster.waitForMembers(3, CONVERGE_MS);
    const outcome = await hammer([client], 2);
    expect(outcome.messages).toEqual([]);
    expect(outcome.allowed).toBe(0);
  }, TEST_MS);
});
