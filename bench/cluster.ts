/**
 * The cluster path against the peers a Node.js team deploys instead (rate-limiter-flexible
 * on Redis, a Lua token bucket on Redis), measured in the same run by the same load
 * generators (load.ts). ringlimit runs as real `serve` processes on 127.0.0.1 (1, 3 and 5
 * nodes, reached with RingLimitClient) and as an embedded member joined to 3 nodes.
 *
 * - Closed loop, 100k uniform keys, concurrency 1, 64 and 256: the headline table.
 * - Closed loop at concurrency 64 over the other key sets (keysets.ts): Zipf and one hot
 *   key, the hot key also with hot-key mode (`global: true`) on.
 * - Open loop, uniform keys, at 25/50/75 % of the 1-node client's closed-loop maximum,
 *   latency from the scheduled send time (p50/p99/p99.9), and a chart of it (svg.ts).
 *
 * On 2 cores this measures overhead, not scale-out: every process shares the same cores.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ChaosCluster } from '../src/chaos/cluster.js';
import { createNode } from '../src/node/node.js';
import { headlineTable, hotKeyTable, keySetTable, openLoopTable, type ClosedResults, type HotKeyPair, type OpenResults } from './cluster-report.js';
import { ACTION, LIMIT, WINDOW_SECONDS, benchClient, clientContender, embeddedContender, ownerAmong } from './contenders.js';
import { hotKey, topKeyShare, uniformKeys, zipfKeys, type KeySet } from './keysets.js';
import { CpuMeter, perDecision } from './cpu-meter.js';
import { lowLoadSeconds, lowLoadTable, LOW_RATES, measureLowLoad } from './low-load.js';
import { closedLoop, KEEP_UP, openLoop, openLoopDefaults, pool, type LoopResult, type OpenLoopRun } from './load.js';
import { luaTokenBucketRedis, rateLimiterFlexibleRedis, startRedis, type Contender } from './peers/redis.js';
import { Progress } from './progress.js';
import { pythonClient } from './python-client.js';
import { latencyChart } from './svg.js';
import { fmtRate, median, type Log } from './util.js';

const CONCURRENCY = [1, 64, 256] as const;
const MEASURE_MS: Record<(typeof CONCURRENCY)[number], number> = { 1: 1_000, 64: 1_500, 256: 1_500 };
/** The other key sets run at this concurrency only (runtime). */
const KEYSET_CONCURRENCY = 64;
/** Rounds per closed-loop run, every contender once per round in turn; the tables show each one's median. */
const ROUNDS = 3;
const WARMUP_MS = 5_000;
const ROUND_WARMUP_MS = 500;
/** Offered loads, as shares of the 1-node client's closed-loop maximum (uniform keys, concurrency 256). */
const OPEN_SHARES = [0.25, 0.5, 0.75] as const;
/** Rounds per open-loop rate, pooled into one histogram per contender and rate. */
const OPEN_ROUNDS = 2;
const OPEN_MEASURE_MS = 2_000;
const OPEN_WARMUP_MS = 500;
const MEMBER_ID = 'bench-member';
const CHART_FILE = 'latency-vs-load.svg';
const CHART_PATH = fileURLToPath(new URL(`../../bench/${CHART_FILE}`, import.meta.url));

const fmtMs = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

/** `ROUNDS` interleaved rounds of every contender in `list`; stores each one's medians under `run`. */
async function closedRounds(list: readonly Contender[], keys: KeySet, run: string, concurrency: number, measureMs: number, progress: Progress, results: ClosedResults): Promise<void> {
  const rounds = new Map<string, LoopResult[]>(list.map((c) => [c.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of list) {
      // Each contender's streams and processes were idle while the others ran: warm them again first.
      await closedLoop(c.call, keys.keys, concurrency, ROUND_WARMUP_MS);
      const meter = new CpuMeter(c.pids?.() ?? []);
      meter.start();
      const r = await closedLoop(c.call, keys.keys, concurrency, measureMs);
      r.cpu = perDecision(meter.stop(), r.count ?? 0);
      rounds.get(c.name)!.push(r);
      progress.step((ROUND_WARMUP_MS + measureMs) / 1000, `${keys.name}, concurrency ${concurrency}, round ${round + 1}/${ROUNDS}: ${c.name}: ${fmtRate(r.rate)}, p50 ${fmtMs(r.p50Ms)}, p99 ${fmtMs(r.p99Ms)}`);
    }
  }
  for (const c of list) {
    const l = rounds.get(c.name)!;
    if (!results.has(c.name)) results.set(c.name, new Map());
    const cpu = { clientUs: median(l.map((r) => r.cpu?.clientUs ?? 0)), serversUs: median(l.map((r) => r.cpu?.serversUs ?? 0)) };
    results.get(c.name)!.set(run, { rate: median(l.map((r) => r.rate)), p50Ms: median(l.map((r) => r.p50Ms)), p99Ms: median(l.map((r) => r.p99Ms)), cpu });
  }
}

/** Every contender at every rate, `OPEN_ROUNDS` interleaved rounds per rate, pooled. */
async function openRounds(list: readonly Contender[], keys: KeySet, rates: readonly number[], progress: Progress): Promise<OpenResults> {
  const runs = new Map<string, OpenLoopRun[][]>(list.map((c) => [c.name, rates.map(() => [])]));
  for (const [i, rate] of rates.entries()) {
    for (let round = 0; round < OPEN_ROUNDS; round++) {
      for (const c of list) {
        await openLoop(c.call, keys.keys, { rate, durationMs: OPEN_WARMUP_MS });
        const run = await openLoop(c.call, keys.keys, { rate, durationMs: OPEN_MEASURE_MS });
        runs.get(c.name)![i]!.push(run);
        const r = pool([run]);
        const state = r.keptUp ? 'kept up' : `BEHIND (${r.dropped} dropped, ${r.errors} failed, ${r.unanswered} unanswered)`;
        progress.step((OPEN_WARMUP_MS + OPEN_MEASURE_MS) / 1000, `open loop ${fmtRate(rate)} (${Math.round(100 * OPEN_SHARES[i]!)} %), round ${round + 1}/${OPEN_ROUNDS}: ${c.name}: answered ${fmtRate(r.answeredRate)}, p50 ${fmtMs(r.p50Ms)}, p99 ${fmtMs(r.p99Ms)}, p99.9 ${fmtMs(r.p999Ms)}, send lag p50 ${fmtMs(r.lagP50Ms)}, ${state}`);
      }
    }
  }
  return new Map([...runs].map(([name, perRate]) => [name, perRate.map((r) => pool(r))]));
}

export async function runClusterBench(log: Log): Promise<string> {
  const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const progress = new Progress(log);
  const redis = await startRedis(log);
  const clusters: ChaosCluster[] = [];
  /** Everything to close at the end (contenders sharing a client or node close nothing). */
  const contenders: Contender[] = [];
  try {
    const peers = redis === undefined ? [] : [rateLimiterFlexibleRedis(redis.port, LIMIT, WINDOW_SECONDS), luaTokenBucketRedis(redis.port, LIMIT, WINDOW_SECONDS)];
    for (const p of peers) p.pids = () => (redis?.pid === undefined ? [] : [redis.pid]);
    contenders.push(...peers);
    const peer = peers[0];
    progress.note('starting ringlimit serve processes (1, 3 and 5 nodes, and 3 more for the embedded member)…');
    const start = async (size: number): Promise<ChaosCluster> => {
      const cluster = await ChaosCluster.start(size, { cliPath, harness: false });
      clusters.push(cluster);
      return cluster;
    };
    const one = await start(1);
    const three = await start(3);
    const five = await start(5);
    const host = await start(3);
    await Promise.all([three.waitForMembers(3, 20_000), five.waitForMembers(5, 20_000), host.waitForMembers(3, 20_000)]);
    // `serve` nodes on one host share the per-user local cluster key; an embedded member joins them with it.
    const member = await createNode({ nodeId: MEMBER_ID, port: 0, gossipPort: 0, join: [host.node(0).gossip], localClusterKey: true });
    const memberContender = { ...embeddedContender('ringlimit embedded member (`node.allow`, joined to 3 nodes)', 'ringlimit embedded member', member), pids: () => host.pids() };
    contenders.push(memberContender);
    for (let i = 0; i < 500 && member.owners().length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    if (member.owners().length < 4) throw new Error(`the embedded member sees ${member.owners().length} owners after 10 s, not 4: it did not join the 3 serve nodes`);

    const threeClient = benchClient(three.grpcAddresses());
    const served = (c: Contender, cluster: ChaosCluster): Contender => ({ ...c, pids: () => cluster.pids() });
    const ringlimit = [
      served(clientContender('ringlimit, 1 `serve` node, `RingLimitClient`', 'ringlimit 1 node (client)', benchClient(one.grpcAddresses())), one),
      served(clientContender('ringlimit, 3 `serve` nodes, `RingLimitClient`', 'ringlimit 3 nodes (client)', threeClient), three),
      served(clientContender('ringlimit, 5 `serve` nodes, `RingLimitClient`', 'ringlimit 5 nodes (client)', benchClient(five.grpcAddresses())), five),
      memberContender,
    ];
    contenders.push(...ringlimit.filter((c) => c !== memberContender));
    const headline = [...peers, ...ringlimit];
    const [oneNode, threeNodes] = ringlimit as [Contender, Contender, Contender, Contender];

    // The hot key: not owned by the embedded member (so off forwards and on answers from the
    // local copy), nor by n0 of the 3 nodes (the not-ring-aware client asks n0).
    const threeIds = [0, 1, 2].map((i) => three.node(i).nodeId);
    const ownerInThree = ownerAmong(threeIds);
    const hot = hotKey((key) => member.ownerOf(key, ACTION) !== MEMBER_ID && ownerInThree(key) !== three.node(0).nodeId);
    const hotName = hot.keys[0]!;
    const viaN0Client = benchClient([three.node(0).grpc], { ringAware: false });
    const viaN0 = served(clientContender('ringlimit, 3 nodes, client not ring-aware, through n0 (not the owner)', 'via n0', viaN0Client), three);
    contenders.push(viaN0);
    const pairs: HotKeyPair[] = [
      { path: 'embedded member (`node.allow`; the key is owned by another node)', off: memberContender, on: embeddedContender('ringlimit embedded member, `global: true`', '', member, { global: true, shared: true }) },
      { path: '3 `serve` nodes, `RingLimitClient` (ring-aware: off sends to the owner, on to its preferred node)', off: threeNodes, on: clientContender('ringlimit, 3 `serve` nodes, `RingLimitClient`, `global: true`', '', threeClient, { global: true, shared: true }) },
      { path: '3 `serve` nodes, client not ring-aware, through n0 (not the owner)', off: viaN0, on: clientContender('ringlimit, 3 nodes, through n0, `global: true`', '', viaN0Client, { global: true, shared: true }) },
    ];
    const hotList = [...headline.filter((c) => c !== memberContender && c !== threeNodes), ...pairs.flatMap((p) => [p.off, p.on])];
    progress.note(`hot key ${hotName}: owned by ${member.ownerOf(hotName, ACTION)} in the embedded member's cluster, by ${ownerInThree(hotName)} of ${threeIds.join(', ')}`);

    const uniform = uniformKeys();
    const zipf = zipfKeys();
    progress.note(`Zipf key set: the top key takes ${(100 * topKeyShare(zipf)).toFixed(1)} % of the draws`);

    const warmList = [...headline, viaN0];
    const closedSeconds = (n: number, measureMs: number): number => (ROUNDS * n * (ROUND_WARMUP_MS + measureMs)) / 1000;
    progress.plan((warmList.length * WARMUP_MS) / 1000);
    progress.plan(CONCURRENCY.reduce((s, c) => s + closedSeconds(headline.length, MEASURE_MS[c]), 0));
    progress.plan(closedSeconds(headline.length + hotList.length, MEASURE_MS[KEYSET_CONCURRENCY]));
    progress.plan((OPEN_SHARES.length * OPEN_ROUNDS * headline.length * (OPEN_WARMUP_MS + OPEN_MEASURE_MS)) / 1000);
    const lowList = [...(peer === undefined ? [] : [peer]), oneNode, threeNodes];
    progress.plan(lowLoadSeconds(lowList.length));
    // No settle wait (a fresh cluster pulls nothing: members announce their pushes; the change
    // section measures the first pass). Warm every path up (JIT) in every process it crosses: a member's
    // forwarding path took about 5 s to reach its steady rate in a separate run.
    for (const c of warmList) {
      await closedLoop(c.call, uniform.keys, 64, WARMUP_MS);
      progress.step(WARMUP_MS / 1000, `warmed up: ${c.name}`);
    }

    const closed: ClosedResults = new Map();
    for (const concurrency of CONCURRENCY) await closedRounds(headline, uniform, `uniform@${concurrency}`, concurrency, MEASURE_MS[concurrency], progress, closed);
    await closedRounds(headline, zipf, `zipf@${KEYSET_CONCURRENCY}`, KEYSET_CONCURRENCY, MEASURE_MS[KEYSET_CONCURRENCY], progress, closed);
    await closedRounds(hotList, hot, `hot@${KEYSET_CONCURRENCY}`, KEYSET_CONCURRENCY, MEASURE_MS[KEYSET_CONCURRENCY], progress, closed);

    const maxRate = closed.get(oneNode.name)!.get('uniform@256')!.rate;
    const rates = OPEN_SHARES.map((s) => Math.round((s * maxRate) / 1000) * 1000);
    progress.note(`open loop at ${rates.map((r) => fmtRate(r)).join(', ')} (25/50/75 % of the 1-node client's ${fmtRate(maxRate)})`);
    const open = await openRounds(headline, uniform, rates, progress);

    writeFileSync(
      CHART_PATH,
      latencyChart(
        'ringlimit and Redis peers: latency against offered load',
        `open loop, 100k uniform keys, all allowed; ${new Date().toISOString().slice(0, 10)}; 2 shared cores`,
        headline.map((c) => ({ label: c.short, points: open.get(c.name)! })),
      ),
    );
    progress.note(`wrote ${CHART_PATH}`);
    const low = await measureLowLoad(lowList, progress);
    const python = await pythonClient(one.grpcAddresses()[0]!, three.grpcAddresses()[0]!, log);

    const vsPeer = peer === undefined ? 'Redis is not installed, so there are no ratios.' : 'Ratios in brackets are against rate-limiter-flexible + Redis in the same run.';
    return [
      '### Cluster path against Redis (closed loop, 100k uniform keys, all allowed)',
      '',
      `Medians of ${ROUNDS} rounds per concurrency, the contenders taking turns within each round. ${vsPeer} _CPU µs per decision_: user + system CPU of the bench process (load generator and client, or the embedded member) and of the processes serving the contender (redis-server; the \`serve\` nodes; for the embedded member, the 3 nodes it joined), read from \`/proc\` and \`process.cpuUsage()\` over the measured run, divided by its decisions. Every process shares the machine’s 2 cores: this measures overhead, not scale-out — more nodes only add hops and processes competing for the same cores (the 5-node row most of all).`,
      '',
      headlineTable(headline, closed, peer),
      '',
      `#### Key sets (closed loop, concurrency ${KEYSET_CONCURRENCY}, hot-key mode off)`,
      '',
      `Uniform: the headline run. Zipf: s = 1.0 over the same 100k keys (the top key takes ${(100 * topKeyShare(zipf)).toFixed(1)} % of the calls, the top 100 about 43 %). Hot key: every call on \`${hotName}\`, which neither the embedded member nor n0 of the 3 nodes owns. Medians of ${ROUNDS} rounds. ${vsPeer}`,
      '',
      keySetTable(headline, closed, peer),
      '',
      `#### One hot key: hot-key mode (\`global: true\`) off and on (closed loop, concurrency ${KEYSET_CONCURRENCY})`,
      '',
      'With the mode on, every node answers the key from its local copy of the owner’s state and sends its hits to the owner asynchronously; off, a node that does not own the key forwards every call to the owner. The ring-aware client sends a call to the key’s owner with the mode off, and to its preferred node (a random one, here possibly the owner) with it on; the client that is not ring-aware asks n0, which does not own the key.',
      '',
      hotKeyTable(pairs, closed),
      '',
      `#### Open loop: latency against offered load (100k uniform keys)`,
      '',
      `Every contender gets the same offered rates: 25, 50 and 75 % of the 1-node \`RingLimitClient\`’s closed-loop maximum in this run (its median at concurrency 256, ${fmtRate(maxRate)}), so the Redis peers and ringlimit compare at equal load and queueing shows in the latency. Calls are issued on a schedule by a 1 ms timer, whatever the answers; latency runs from each call’s scheduled send time (no coordinated omission), in a log-linear histogram (≤ 0.4 % error). ${OPEN_ROUNDS} rounds of ${OPEN_MEASURE_MS / 1000} s per rate and contender (each after a ${OPEN_WARMUP_MS} ms warm-up at that rate), pooled. _Send lag_: how late the generator issued calls against their schedule (the 1 ms timer alone adds about half a tick at p50; a busy bench process adds more, most of all with the embedded member, which shares it); it is part of every latency in the row. At most ${openLoopDefaults.maxOutstanding.toLocaleString('en-US')} calls await answers; a call due beyond that is dropped and counted. _Kept up_: answered at least ${Math.round(KEEP_UP * 100)} % of the offered rate while the schedule ran, nothing dropped or failed; a contender that did not keep up shows its queue in the latency. ${vsPeer}${peer === undefined ? '' : ' No ratio where the peer itself did not keep up.'}`,
      '',
      openLoopTable(headline, open, peer, OPEN_SHARES),
      '',
      `![p50 and p99 latency against offered load](${CHART_FILE}) (\`bench/${CHART_FILE}\`, overwritten by each run: it shows the newest run’s figures)`,
      '',
      `#### CPU at low load (open loop at ${LOW_RATES.map((r) => fmtRate(r)).join(' and ')}, 100 keys)`,
      '',
      `CPU of every process, in % of one core, while an open loop (1 ms timer) offers each rate for 5 s after a 1 s warm-up. The bench process holds the load generator and the client (its timer alone costs a few % of a core); the serving processes are redis-server for the peer and the \`serve\` nodes for ringlimit. Ratios against rate-limiter-flexible + Redis at the same rate.${peer === undefined ? ' Redis is not installed: no ratios.' : ''}`,
      '',
      lowLoadTable(low, peer),
      '',
      python,
    ].join('\n');
  } finally {
    for (const c of contenders) await c.close().catch(() => undefined);
    for (const cluster of clusters) await cluster.close();
    await redis?.stop();
  }
}
