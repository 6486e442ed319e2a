import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { RingLimitNode } from '../../src/node/node.js';
import { routingKey } from '../../src/node/routing/cluster-view.js';
import { Ring } from '../../src/ring/index.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

const LIMIT = 100;
/** A day-long fixed window: the test never straddles a boundary (except right at UTC midnight). */
const WINDOW_MS = 86_400_000;

describe('failover: the owner dies abruptly under load', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('the replica continues from the replicated counts; callers see no error', async () => {
    // splitShareMs 0: the survivors decide alone at once, so the limits are reached and any count
    // the replica lacks shows as over-admission. By default they would count the dead owner as
    // out of reach (a crash looks like a split) and spend 2/3 of what remains for a minute —
    // the limits would not be reached (this test failed so whenever the dead owner's gossip
    // leave did not get out before its sockets closed).
    // replicationMinBatch 1: a flush every replicationDelayMs, which the bound below is made of (a quiet owner's
    // fuller frames, replicationMinBatch 8 by default, may hold up to 7 decisions 50 ms: replication-acks.test.ts).
    nodes = await startCluster(3, { replicationDelayMs: 5, replicationMinBatch: 1, splitShareMs: 0 });
    const [a, b, c] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    // Keys owned by c, asked through a and b.
    const keys: string[] = [];
    for (let i = 0; keys.length < 10 && i < 10_000; i++) if (a.ownerOf(`fo-${i}`, 'api') === 'n2') keys.push(`fo-${i}`);
    const allowed = new Map(keys.map((k) => [k, 0]));
    const allowedAt: number[] = [];
    let errors = 0;
    let stop = false;
    const load = async (node: RingLimitNode, offset: number) => {
      for (let i = 0; !stop && i < 100_000; i++) {
        const key = keys[(i + offset) % keys.length]!;
        try {
          const d = await node.allow({ key, action: 'api', limit: LIMIT, windowMs: WINDOW_MS, algorithm: 'fixed-window' });
          if (d.allowed) {
            allowed.set(key, allowed.get(key)! + 1);
            allowedAt.push(performance.now());
          }
        } catch {
          errors++;
        }
        if (i % 4 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    };
    const running = [load(a, 0), load(b, 5), load(a, 3), load(b, 7)];
    // Let the owner admit part of each limit, then kill it without a goodbye.
    await waitFor(() => [...allowed.values()].every((n) => n >= 40), 10_000, 'owner to admit 40 per key');
    const admittedBeforeKill = new Map(allowed);
    // How late this process saw answers around the kill (shared cores can stall it): an answer
    // the owner sent before it died may carry a receipt time later than that.
    const stall = monitorEventLoopDelay({ resolution: 1 });
    stall.enable();
    await new Promise((r) => setTimeout(r, 50));
    stall.disable();
    const killAt = performance.now();
    await c.stop({ graceful: false });
    await waitFor(() => a.owners().length === 2 && b.owners().length === 2, 5_000, 'survivors to drop the dead owner');
    await waitFor(() => [...allowed.values()].every((n) => n >= LIMIT), 10_000, 'limits to be reached');
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(running);
    let over = 0;
    for (const key of keys) over += Math.max(0, allowed.get(key)! - LIMIT);
    const overPct = (100 * over) / (LIMIT * keys.length);
    // The bound: what the owner admitted within one replication delay before it died (its
    // last changes, not yet sent), counted with the flush interval's jitter (2 × delay).
    const replicationDelayMs = 5;
    const windowMs = 2 * replicationDelayMs + stall.max / 1e6;
    const bound = allowedAt.filter((t) => t > killAt - windowMs && t <= killAt).length;
    console.log(
      `failover: over-admission ${over} units over ${keys.length} keys (${overPct.toFixed(2)} % of the affected limits); owner admitted ${bound} in the last ${windowMs.toFixed(1)} ms (2 replication delays and this process's longest stall); before the kill ${[...admittedBeforeKill.values()].join(',')}`,
    );
    expect(errors).toBe(0);
    expect(over).toBeLessThanOrEqual(bound);
  }, 60_000);
});

describe('failover after a replica restarted', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('a restarted node receives copies of quiet keys, so a later owner failure loses no counts', { timeout: 60_000 }, async () => {
    nodes = await startCluster(3, { replicationDelayMs: 5 });
    const keys = Array.from({ length: 60 }, (_, i) => `quiet-${i}`);
    const req = (key: string) => ({ key, action: 'api', limit: 20, windowMs: WINDOW_MS, algorithm: 'fixed-window' as const });
    // Exhaust every key, then let them go quiet: from now on they only see rejections (no changes to replicate).
    for (const key of keys) for (let i = 0; i < 25; i++) await nodes[i % 3]!.allow(req(key));
    // The crash below only makes n2 come back empty; it must not also drop n2's last, not yet
    // replicated decisions (the documented crash bound, tested above): n2's last key is exhausted
    // a few ms before the kill, often before the next replication flush. Wait until every key's
    // replica holds its owner's count.
    const ring = new Ring([{ nodeId: 'n0' }, { nodeId: 'n1' }, { nodeId: 'n2' }]);
    const cells = new Float64Array(4);
    const countAt = (nodeId: string, key: string) => (nodes[Number(nodeId.slice(1))]!.store.readEntry('api', key, cells) === -1 ? -1 : cells[1]);
    const replicated = (key: string) => {
      const [owner, replica] = ring.owners(routingKey('api', key), 2) as [string, string];
      return countAt(replica, key) === countAt(owner, key);
    };
    await waitFor(() => keys.every(replicated), 5_000, "replicas to hold their owners' counts");
    // n2 dies and comes back empty (a crash: no snapshot).
    await nodes[2]!.stop({ graceful: false });
    await waitFor(() => nodes[0]!.owners().length === 2 && nodes[1]!.owners().length === 2, 5_000, 'n2 to be declared failed');
    const { createNode } = await import('../../src/node/node.js');
    nodes[2] = await createNode({ nodeId: 'n2', gossipPreset: 'test', port: 0, gossipPort: 0, replicationDelayMs: 5, join: [nodes[0]!.gossipAddress!], clusterName: nodes[0]!.options.clusterName });
    await waitFor(() => nodes.every((n) => n.owners().length === 3), 10_000, 'n2 to rejoin');
    // Owners re-send their keys to the new replica set, and interim owners push n2's keys back:
    // wait until n2 holds every key it owns or is the replica of.
    const n2Holds = keys.filter((k) => ring.owners(routingKey('api', k), 2).includes('n2'));
    await waitFor(() => n2Holds.every((k) => nodes[2]!.store.readEntry('api', k, cells) !== -1), 10_000, 'n2 to hold its keys and copies');
    // Now n1 dies: keys it owned whose replica is n2 must still be exhausted there.
    await nodes[1]!.stop({ graceful: false });
    await waitFor(() => nodes[0]!.owners().length === 2 && nodes[2]!.owners().length === 2, 5_000, 'n1 to be declared failed');
    let overAdmitted = 0;
    const snapshot = keys.map((k) => {
      const c0 = new Float64Array(4);
      const c2 = new Float64Array(4);
      const a0 = nodes[0]!.store.readEntry('api', k, c0);
      const a2 = nodes[2]!.store.readEntry('api', k, c2);
      return `${k} owner=${nodes[0]!.ownerOf(k, 'api')} old=${ring.owners(routingKey('api', k), 2).join('/')} n0=${a0 === -1 ? '-' : c0[1]} n2=${a2 === -1 ? '-' : c2[1]}`;
    });
    for (const key of keys) {
      let over = 0;
      for (let i = 0; i < 5; i++) if ((await nodes[i % 2 === 0 ? 0 : 2]!.allow(req(key))).allowed) over++;
      if (over > 0) console.log('OVER', over, snapshot[keys.indexOf(key)]);
      overAdmitted += over;
    }
    expect(overAdmitted).toBe(0);
  });
});

describe('failover when balancing gives a dead owner\'s key to a node that was not its replica', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('the new owner pulls the count from the old replica: nothing is admitted again', { timeout: 60_000 }, async () => {
    nodes = await startCluster(6, { replicationDelayMs: 5 });
    const ids = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
    const before = new Ring(ids.map((nodeId) => ({ nodeId })));
    const after = before.withoutMember('n3');
    // Keys owned by n3 whose owner after n3's death is not n3's replica for them, nor is the new
    // owner's successor (which a new owner also asks): about 0.15 % of n3's keys with 6 nodes.
    const keys: string[] = [];
    for (let i = 0; keys.length < 8 && i < 400_000; i++) {
      const id = routingKey('api', `moved-${i}`);
      const [owner, replica] = before.owners(id, 2);
      if (owner === 'n3' && !after.owners(id, 2).includes(replica!)) keys.push(`moved-${i}`);
    }
    expect(keys).toHaveLength(8);
    const req = (key: string) => ({ key, action: 'api', limit: 20, windowMs: WINDOW_MS, algorithm: 'fixed-window' as const });
    for (const key of keys) for (let i = 0; i < 25; i++) await nodes[i % 6]!.allow(req(key));
    const cells = new Float64Array(4);
    const replicaHolds = (key: string) => {
      const replica = before.owners(routingKey('api', key), 2)[1]!;
      return nodes[Number(replica.slice(1))]!.store.readEntry('api', key, cells) !== -1 && cells[1] === 20;
    };
    await waitFor(() => keys.every(replicaHolds), 5_000, 'replicas to hold the counts');
    await nodes[3]!.stop({ graceful: false });
    const survivors = nodes.filter((_, i) => i !== 3);
    await waitFor(() => survivors.every((n) => n.owners().length === 5), 5_000, 'n3 to be declared failed');
    let admitted = 0;
    for (const key of keys) {
      const owner = nodes[0]!.ownerOf(key, 'api');
      expect(owner).toBe(after.owner(routingKey('api', key)));
      for (const node of survivors) if ((await node.allow(req(key))).allowed) admitted++;
    }
    expect(admitted).toBe(0);
  });
});
