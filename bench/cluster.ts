/**
 * The cluster path against the peers a Node.js team deploys instead (rate-limiter-flexible
 * on Redis, a Lua token bucket on Redis), measured in the same run by the same closed-loop
 * load generator: 100k keys in random order, concurrency 1, 64 and 256. ringlimit runs as
 * real `serve` processes on 127.0.0.1 (1 and 3 nodes, reached with RingLimitClient) and as
 * an embedded member joined to 3 nodes. On 2 cores this measures overhead, not scale-out:
 * every process shares the same two cores.
 */
import { fileURLToPath } from 'node:url';
import { ChaosCluster } from '../src/chaos/cluster.js';
import { seededRng } from '../src/common/rng.js';
import { RingLimitClient } from '../src/node/api/client.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';
import { nodeDefaults } from '../src/node/options.js';
import { luaTokenBucketRedis, rateLimiterFlexibleRedis, startRedis, type Contender } from './peers/redis.js';
import { pythonClient } from './python-client.js';
import { fmtRate, median, table, type Log } from './util.js';

const KEYS = 100_000;
const LIMIT = 1_000_000_000;
const WINDOW_SECONDS = 60;
const CONCURRENCY = [1, 64, 256] as const;
const MEASURE_MS: Record<(typeof CONCURRENCY)[number], number> = { 1: 1_000, 64: 1_500, 256: 1_500 };
/** Rounds per concurrency, every contender once per round in turn; the table shows each one's median. */
const ROUNDS = 3;
const WARMUP_MS = 5_000;
const ROUND_WARMUP_MS = 500;
const MAX_SAMPLES = 2_000_000;

interface LoopResult {
  rate: number;
  p50Ms: number;
  p99Ms: number;
}

const keyOrder = (() => {
  const rng = seededRng(42);
  return Array.from({ length: 4 * KEYS }, () => `user:${rng.int(KEYS)}`);
})();

const latencies = new Float64Array(MAX_SAMPLES);

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** `concurrency` callers each awaiting one call at a time, for durationMs. */
async function closedLoop(call: (key: string) => Promise<unknown>, concurrency: number, durationMs: number): Promise<LoopResult> {
  let next = 0;
  let samples = 0;
  const started = performance.now();
  const endAt = started + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < endAt) {
        const key = keyOrder[next++ % keyOrder.length]!;
        const t0 = performance.now();
        await call(key);
        if (samples < MAX_SAMPLES) latencies[samples++] = performance.now() - t0;
        else samples++;
      }
    }),
  );
  const elapsed = performance.now() - started;
  const sorted = latencies.slice(0, Math.min(samples, MAX_SAMPLES)).sort();
  return { rate: (1000 * samples) / elapsed, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

function ringlimitClient(name: string, addresses: string[]): Contender {
  const client = new RingLimitClient({ nodes: addresses });
  return {
    name,
    call: (key) => client.allow({ key, action: 'bench', limit: LIMIT, windowMs: WINDOW_SECONDS * 1000 }),
    close: async () => client.close(),
  };
}

function embedded(node: RingLimitNode): Contender {
  return {
    name: 'ringlimit embedded member (`node.allow`, joined to 3 nodes)',
    call: (key) => node.allow({ key, action: 'bench', limit: LIMIT, windowMs: WINDOW_SECONDS * 1000 }),
    close: () => node.stop({ graceful: false }),
  };
}

export async function runClusterBench(log: Log): Promise<string> {
  const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const redis = await startRedis(log);
  const clusters: ChaosCluster[] = [];
  const contenders: Contender[] = [];
  try {
    if (redis !== undefined) {
      contenders.push(rateLimiterFlexibleRedis(redis.port, LIMIT, WINDOW_SECONDS), luaTokenBucketRedis(redis.port, LIMIT, WINDOW_SECONDS));
    }
    log('starting ringlimit serve processes (1 node, 3 nodes, and 3 more for the embedded member)…');
    const one = await ChaosCluster.start(1, { cliPath, harness: false });
    clusters.push(one);
    const three = await ChaosCluster.start(3, { cliPath, harness: false });
    clusters.push(three);
    const host = await ChaosCluster.start(3, { cliPath, harness: false });
    clusters.push(host);
    await Promise.all([three.waitForMembers(3, 20_000), host.waitForMembers(3, 20_000)]);
    const member = await createNode({ nodeId: 'bench-member', port: 0, gossipPort: 0, join: [host.node(0).gossip] });
    for (let i = 0; i < 500 && member.owners().length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    contenders.push(ringlimitClient('ringlimit, 1 `serve` node, `RingLimitClient`', one.grpcAddresses()), ringlimitClient('ringlimit, 3 `serve` nodes, `RingLimitClient`', three.grpcAddresses()), embedded(member));

    // Steady state: for handoffWindowMs after a ring change, a node's first access to each key
    // waits for a pull from the key's previous owner. A cluster that just formed pays that for
    // every key, which is not what a running cluster does.
    const steadyAt = Date.now() + nodeDefaults.handoffWindowMs + 1_000;
    log(`waiting ${((steadyAt - Date.now()) / 1000).toFixed(0)} s for the clusters' handoff windows to close (steady state)…`);
    await new Promise((r) => setTimeout(r, steadyAt - Date.now()));
    // Then warm every path up (JIT, stream windows) in every process it crosses: a member's
    // forwarding path took about 5 s to reach its steady rate in a separate run.
    for (const c of contenders) {
      log(`warm-up: ${c.name}`);
      await closedLoop(c.call, 64, WARMUP_MS);
    }
    const results = new Map<string, Map<number, LoopResult>>(contenders.map((c) => [c.name, new Map()]));
    for (const concurrency of CONCURRENCY) {
      const rounds = new Map<string, LoopResult[]>(contenders.map((c) => [c.name, []]));
      for (let round = 0; round < ROUNDS; round++) {
        for (const c of contenders) {
          // Each contender's streams and processes were idle while the others ran: warm them again first.
          await closedLoop(c.call, concurrency, ROUND_WARMUP_MS);
          const r = await closedLoop(c.call, concurrency, MEASURE_MS[concurrency]);
          rounds.get(c.name)!.push(r);
          log(`concurrency ${concurrency}, round ${round + 1}/${ROUNDS}: ${c.name}: ${fmtRate(r.rate)}, p50 ${(r.p50Ms * 1000).toFixed(0)} µs, p99 ${r.p99Ms.toFixed(2)} ms`);
        }
      }
      for (const c of contenders) {
        const list = rounds.get(c.name)!;
        results.get(c.name)!.set(concurrency, { rate: median(list.map((r) => r.rate)), p50Ms: median(list.map((r) => r.p50Ms)), p99Ms: median(list.map((r) => r.p99Ms)) });
      }
    }
    const peer = redis === undefined ? undefined : results.get(contenders[0]!.name);
    const ratio = (r: LoopResult, concurrency: number, field: keyof LoopResult): string => {
      const base = peer?.get(concurrency)?.[field];
      return base === undefined ? '–' : `${(r[field] / base).toFixed(2)}×`;
    };
    const rows = contenders.map((c) => {
      const r = results.get(c.name)!;
      const c1 = r.get(1)!;
      const c64 = r.get(64)!;
      const c256 = r.get(256)!;
      return [
        c.name,
        `${(c1.p50Ms * 1000).toFixed(0)} µs (${ratio(c1, 1, 'p50Ms')})`,
        `${fmtRate(c64.rate)} (${ratio(c64, 64, 'rate')})`,
        `${c64.p99Ms.toFixed(2)} ms (${ratio(c64, 64, 'p99Ms')})`,
        `${fmtRate(c256.rate)} (${ratio(c256, 256, 'rate')})`,
      ];
    });
    const python = await pythonClient(one.grpcAddresses()[0]!, three.grpcAddresses()[0]!, log);
    return [
      '### Cluster path against Redis (closed loop, 100k uniform keys, all allowed)',
      '',
      `Medians of ${ROUNDS} rounds per concurrency, the contenders taking turns within each round. Ratios in brackets are against rate-limiter-flexible + Redis in the same run. Every process shares the machine’s 2 cores: this measures overhead, not scale-out.`,
      '',
      table(['contender', 'p50 at concurrency 1', 'decisions/s at 64', 'p99 at 64', 'decisions/s at 256'], rows),
      '',
      python,
    ].join('\n');
  } finally {
    for (const c of contenders) await c.close().catch(() => undefined);
    for (const cluster of clusters) await cluster.close();
    await redis?.stop();
  }
}
