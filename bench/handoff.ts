/**
 * Proportionate handoff, measured: a member joins a cluster holding many keys; how many key
 * states move (handoff pushes, replica re-sends) against the keys whose owner or holders
 * changed, and how long the event loop is held by the walks (chunked per turn).
 * Standalone: npx tsc -p tsconfig.bench.json && node dist-bench/bench/handoff.js
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { routingKey } from '../src/node/routing/cluster-view.js';
import { WALK_TURN_BUDGET_MS } from '../src/node/state/entry-outbox.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';
import { Ring } from '../src/ring/index.js';

const NODES = 4;
const KEYS = 200_000;

const total = (nodes: RingLimitNode[], read: (n: RingLimitNode) => number): number => nodes.reduce((a, n) => a + read(n), 0);

async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

async function quiet(read: () => number, quietMs: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = read();
  let since = Date.now();
  while (Date.now() - since < quietMs && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (read() !== last) {
      last = read();
      since = Date.now();
    }
  }
}

export async function runHandoffBench(log: (line: string) => void): Promise<string> {
  const base = { gossipPreset: 'test' as const, port: 0, gossipPort: 0, replicationDelayMs: 5, clusterName: `bench-handoff-${process.pid}` };
  const nodes: RingLimitNode[] = [await createNode({ ...base, nodeId: 'n0' })];
  try {
    for (let i = 1; i < NODES; i++) nodes.push(await createNode({ ...base, nodeId: `n${i}`, join: [nodes[0]!.gossipAddress!] }));
    await until(() => nodes.every((n) => n.owners().length === NODES), 10_000);
    log(`handoff: ${NODES} nodes up, writing ${KEYS} keys`);
    // Each key decided at its owner (allowNow where it is local), so the write is quick.
    for (let i = 0; i < KEYS; i++) {
      const request = { key: `h-${i}`, action: 'api', limit: 10, windowMs: 86_400_000, algorithm: 'fixed-window' as const };
      const owner = nodes[Number(nodes[0]!.ownerOf(request.key, 'api').slice(1))]!;
      if (owner.allowNow(request) === undefined) await owner.allow(request);
      if (i % 50_000 === 49_999) {
        log(`handoff: ${i + 1} keys written`);
        await new Promise((r) => setImmediate(r));
      }
    }
    await quiet(() => total(nodes, (n) => n.stats().replication.entriesSent), 500, 60_000);
    const pushedBefore = total(nodes, (n) => n.stats().handoff.pushedEntries);
    const resentBefore = total(nodes, (n) => n.stats().replication.resyncEntriesSent);
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const joinedAt = performance.now();
    log('handoff: a member joins');
    nodes.push(await createNode({ ...base, nodeId: `n${NODES}`, join: [nodes[0]!.gossipAddress!] }));
    await until(() => nodes.every((n) => n.owners().length === NODES + 1), 10_000);
    await quiet(() => total(nodes, (n) => n.stats().handoff.pushedEntries + n.stats().replication.resyncEntriesSent), 1_000, 60_000);
    delay.disable();
    const settledMs = performance.now() - joinedAt - 1_000;
    const pushed = total(nodes, (n) => n.stats().handoff.pushedEntries) - pushedBefore;
    const resent = total(nodes, (n) => n.stats().replication.resyncEntriesSent) - resentBefore;
    const before = new Ring(Array.from({ length: NODES }, (_, i) => ({ nodeId: `n${i}` })));
    const after = before.withMember({ nodeId: `n${NODES}` });
    let moved = 0;
    let newReplicas = 0;
    for (let i = 0; i < KEYS; i++) {
      const id = routingKey('api', `h-${i}`);
      if (before.owner(id) !== after.owner(id)) moved++;
      else if (!before.owners(id, 2).includes(after.owners(id, 2)[1]!)) newReplicas++;
    }
    const ms = (ns: number): string => `${(ns / 1e6).toFixed(1)} ms`;
    log(`handoff: pushed ${pushed} (owner changed ${moved}), re-sent ${resent} (new replicas ${newReplicas}), loop delay max ${ms(delay.max)}`);
    const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
    return [
      '### Handoff when a member joins (issue 13)',
      '',
      `${NODES} nodes in one process (gRPC on 127.0.0.1, test gossip preset), ${KEYS.toLocaleString('en-US')} keys with 1 replica, then a ${NODES + 1}th member joins. The walks that find the keys to move yield the event loop every ${WALK_TURN_BUDGET_MS} ms (or 20,000 store slots). The loop delay is that of the one process holding all ${NODES + 1} nodes, measured from the start of the join: an upper bound for one node's, which includes the joining node's own start (loading its gRPC service definitions) and every node's handoff work.`,
      '',
      row(['keys', 'owner changed (ideal 1/N)', 'handoff pushed', 'gained a replica', 're-sent to replicas', 'event-loop delay p50 / p99 / max', 'settled after']),
      row(['---', '---', '---', '---', '---', '---', '---']),
      row([
        KEYS.toLocaleString('en-US'),
        `${moved.toLocaleString('en-US')} (${((moved / KEYS) * 100).toFixed(1)} %; 1/N = ${(100 / (NODES + 1)).toFixed(1)} %)`,
        pushed.toLocaleString('en-US'),
        newReplicas.toLocaleString('en-US'),
        resent.toLocaleString('en-US'),
        `${ms(delay.percentile(50))} / ${ms(delay.percentile(99))} / ${ms(delay.max)}`,
        `${(settledMs / 1000).toFixed(1)} s`,
      ]),
    ].join('\n');
  } finally {
    await Promise.all(nodes.map((n) => n.stop({ graceful: false })));
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  runHandoffBench((l) => console.log(`[bench handoff] ${l}`)).then(
    (section) => console.log(`\n${section}`),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
