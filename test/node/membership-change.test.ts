import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OffsetClock, systemClock } from '../../src/common/clock.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

const LIMIT = 100;
/** A day-long fixed window: a test's few seconds never straddle a boundary (except near UTC midnight). */
const WINDOW_MS = 86_400_000;
const request = (key: string) => ({ key, action: 'api', limit: LIMIT, windowMs: WINDOW_MS, algorithm: 'fixed-window' as const });

/** Waits out the rare case of running right at a window boundary (UTC midnight), skew included. */
async function awayFromBoundary(needMs: number, skewMs = 0): Promise<void> {
  const into = Date.now() % WINDOW_MS;
  if (into < skewMs + 500 || into > WINDOW_MS - needMs - skewMs) await new Promise((r) => setTimeout(r, WINDOW_MS - into + skewMs + 600));
}

/** Drives `callers` loops over `keys` through `nodes()` until `until()`; returns allowed per key. */
function drive(nodes: () => RingLimitNode[], keys: string[], callers: number) {
  const allowed = new Map(keys.map((k) => [k, 0]));
  let errors = 0;
  let stop = false;
  const loops = Array.from({ length: callers }, async (_, c) => {
    for (let i = 0; !stop && i < 1_000_000; i++) {
      const live = nodes();
      const node = live[(c + i) % live.length]!;
      const key = keys[(c * 3 + i) % keys.length]!;
      try {
        if ((await node.allow(request(key))).allowed) allowed.set(key, allowed.get(key)! + 1);
      } catch {
        errors++;
      }
      if (i % 8 === 0) await new Promise((r) => setTimeout(r, 1));
    }
  });
  return {
    allowed,
    errors: () => errors,
    finish: async () => {
      stop = true;
      await Promise.all(loops);
    },
  };
}

function overAdmission(allowed: Map<string, number>): { units: number; pct: number } {
  let units = 0;
  for (const n of allowed.values()) units += Math.max(0, n - LIMIT);
  return { units, pct: (100 * units) / (LIMIT * allowed.size) };
}

describe('membership changes under load', () => {
  let nodes: RingLimitNode[] = [];
  const extra: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll([...nodes, ...extra]);
    extra.length = 0;
  });

  it('a node joining under load: over-admission within 1 % of the affected limits', async () => {
    await awayFromBoundary(30_000);
    nodes = await startCluster(3);
    const keys = Array.from({ length: 60 }, (_, i) => `join-${i}`);
    const load = drive(() => nodes, keys, 12);
    await waitFor(() => [...load.allowed.values()].every((n) => n >= 30), 10_000, 'some admissions');
    const joiner = await createNode({ nodeId: 'n3', gossipPreset: 'test', port: 0, gossipPort: 0, join: [nodes[0]!.gossipAddress!], clusterName: nodes[0]!.options.clusterName });
    extra.push(joiner);
    await waitFor(() => [...nodes, joiner].every((n) => n.owners().length === 4), 10_000, 'everyone to see the joiner');
    const moved = keys.filter((k) => joiner.ownerOf(k, 'api') === 'n3');
    await waitFor(() => [...load.allowed.values()].every((n) => n >= LIMIT), 15_000, 'limits to be reached');
    await new Promise((r) => setTimeout(r, 300));
    await load.finish();
    const over = overAdmission(new Map(moved.map((k) => [k, load.allowed.get(k)!])));
    const all = overAdmission(load.allowed);
    console.log(`join: ${moved.length} of ${keys.length} keys moved to the joiner; over-admission ${over.units} units (${over.pct.toFixed(2)} % of the affected limits; ${all.pct.toFixed(2)} % overall); handoff ${JSON.stringify(joiner.stats().handoff)}`);
    expect(load.errors()).toBe(0);
    expect(moved.length).toBeGreaterThan(0);
    expect(over.pct).toBeLessThanOrEqual(1);
  }, 60_000);

  it('a graceful leave under load: over-admission within 1 %', async () => {
    await awayFromBoundary(30_000);
    nodes = await startCluster(3);
    const keys = Array.from({ length: 60 }, (_, i) => `leave-${i}`);
    const leaver = nodes[2]!;
    const survivors = nodes.slice(0, 2);
    const load = drive(() => survivors, keys, 12);
    await waitFor(() => [...load.allowed.values()].every((n) => n >= 30), 10_000, 'some admissions');
    const affected = keys.filter((k) => survivors[0]!.ownerOf(k, 'api') === 'n2');
    const started = Date.now();
    await leaver.stop({ graceful: true });
    const stopMs = Date.now() - started;
    await waitFor(() => survivors.every((n) => n.owners().length === 2), 5_000, 'survivors to drop the leaver');
    await waitFor(() => [...load.allowed.values()].every((n) => n >= LIMIT), 15_000, 'limits to be reached');
    await new Promise((r) => setTimeout(r, 300));
    await load.finish();
    const over = overAdmission(new Map(affected.map((k) => [k, load.allowed.get(k)!])));
    console.log(`leave: ${affected.length} keys handed over; stop took ${stopMs} ms; over-admission ${over.units} units (${over.pct.toFixed(2)} %)`);
    expect(load.errors()).toBe(0);
    expect(over.pct).toBeLessThanOrEqual(1);
    expect(stopMs).toBeLessThan(5_000);
  }, 60_000);

  it('clock skew of ±5 s between nodes: exactness still holds', async () => {
    const offsets = [-5_000, 0, 5_000];
    await awayFromBoundary(30_000, 5_000);
    nodes = await startCluster(3, {}, (i) => ({ clock: new OffsetClock(systemClock, offsets[i]!) }));
    const keys = Array.from({ length: 20 }, (_, i) => `skew-${i}`);
    const load = drive(() => nodes, keys, 30);
    await waitFor(() => [...load.allowed.values()].every((n) => n >= LIMIT), 15_000, 'limits to be reached');
    await new Promise((r) => setTimeout(r, 300));
    await load.finish();
    for (const n of load.allowed.values()) expect(n).toBe(LIMIT);
  }, 60_000);

  it('a whole-cluster graceful restart keeps the counts (snapshots in dataDir)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ringlimit-snap-'));
    try {
      await awayFromBoundary(30_000);
      nodes = await startCluster(3, { dataDir });
      const keys = Array.from({ length: 30 }, (_, i) => `snap-${i}`);
      for (const key of keys) for (let i = 0; i < 60; i++) await nodes[i % 3]!.allow(request(key));
      await stopAll(nodes, true);
      nodes = await startCluster(3, { dataDir });
      for (const key of keys) {
        let allowed = 0;
        for (let i = 0; i < 60; i++) if ((await nodes[i % 3]!.allow(request(key))).allowed) allowed++;
        expect(allowed).toBe(LIMIT - 60);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
