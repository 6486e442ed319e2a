/**
 * Leases (issue 29 part 4): Zipf traffic (s = 1.0 over 100k keys, fixed windows, all allowed)
 * with leases off and on, in the same run, closed loop at concurrency 64:
 * - an embedded member (`node.allow`) joined to 3 `serve` nodes: with leases on it answers
 *   the busy keys other nodes own from slices they granted it, without a hop;
 * - a `RingLimitClient` that is not ring-aware, through n0 of 3 `serve` nodes: n0 forwards
 *   what it does not own, and with leases on answers the busy ones from its slices (the client
 *   itself is no holder yet);
 * - the time of one leased decision at the embedded member (`node.allowNow`), p50 and p99.
 * Two clusters of 3 `serve` processes, one with `--leases`; the off and on rows take turns.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ChaosCluster } from '../src/chaos/cluster.js';
import type { RateLimitRequest } from '../src/limiter/types.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';
import { benchClient } from './contenders.js';
import { topKeyShare, zipfKeys } from './keysets.js';
import { closedLoop, type Call } from './load.js';
import { Progress } from './progress.js';
import { fmtRate, median, table, type Log } from './util.js';

const CONCURRENCY = 64;
const ROUNDS = 3;
const MEASURE_MS = 2_000;
const ROUND_WARMUP_MS = 500;
const WARMUP_MS = 5_000;
const LIMIT = 1_000_000_000;
const WINDOW_MS = 60_000;
const ACTION = 'bench';
/** Keys forwarded at this rate or more get a lease (the default is 20/s: on Zipf traffic at tens of thousands a second, 2/s reaches the top few thousand keys). */
const THRESHOLD_PER_SEC = 2;
/** Slices live this long (the default is 2 s), and a lease unused this long is given back (default 1 s): long-tailed keys keep theirs between their requests. */
const LEASE_TTL_MS = 10_000;
const IDLE_MS = 5_000;
/** Leases the member may hold (default 10,000): the Zipf tail past the top 10,000 keys still carries about a fifth of the calls. */
const MAX_LEASES = 30_000;
/** Timed leased decisions for the p50. */
const TIMED_CALLS = 200_000;

const request = (key: string): RateLimitRequest => ({ key, action: ACTION, limit: LIMIT, windowMs: WINDOW_MS, algorithm: 'fixed-window' });

interface Pair {
  path: string;
  off: Call;
  on: Call;
}

interface Measured {
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of every process involved (this one, with the member or the client, and the 3 `serve` nodes), per decision, in µs. */
  cpuUsPerDecision: number;
  /** …of which this process's. */
  ownUsPerDecision: number;
}

/** CPU time a process has used, in ms (utime + stime from /proc, 10 ms ticks). */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/** A closed-loop run with the CPU every process spent on it: on a shared machine, CPU per decision is the figure that does not depend on what else runs. */
async function measured(call: Call, keys: readonly string[], servers: readonly number[]): Promise<Measured> {
  const own = process.cpuUsage();
  const before = servers.map(processCpuMs);
  const r = await closedLoop(call, keys, CONCURRENCY, MEASURE_MS);
  const ownUs = process.cpuUsage(own);
  const serversMs = servers.reduce((sum, pid, i) => sum + processCpuMs(pid) - before[i]!, 0);
  const decisions = (r.rate * MEASURE_MS) / 1000;
  return { ...r, cpuUsPerDecision: (ownUs.user + ownUs.system + serversMs * 1000) / Math.max(1, decisions), ownUsPerDecision: (ownUs.user + ownUs.system) / Math.max(1, decisions) };
}

const fmtUs = (ms: number): string => `${(ms * 1000).toFixed(ms < 0.01 ? 1 : 0)} µs`;

/**
 * p50 and p99 of one `allowNow` answered from a slice, in µs: the member's Zipf traffic on keys
 * owned elsewhere, in chunks with an event-loop turn between them (refills arrive meanwhile); a
 * call with no slice to answer it is sent with `allow()` (forwarded, not timed).
 */
async function timeLeased(member: RingLimitNode, keys: readonly string[]): Promise<{ p50Us: number; p99Us: number; timed: number; share: number }> {
  const times: number[] = [];
  let asked = 0;
  const forwarded: Promise<unknown>[] = [];
  for (let i = 0; times.length < TIMED_CALLS && i < 20 * TIMED_CALLS; i++) {
    const key = keys[i % keys.length]!;
    if (member.ownerOf(key, ACTION) === member.nodeId) continue;
    const r = request(key);
    asked++;
    const t0 = process.hrtime.bigint();
    const d = member.allowNow(r);
    const t1 = process.hrtime.bigint();
    if (d !== undefined) times.push(Number(t1 - t0) / 1000);
    else forwarded.push(member.allow(r));
    if (forwarded.length >= CONCURRENCY) {
      await Promise.all(forwarded);
      forwarded.length = 0;
    }
  }
  await Promise.all(forwarded);
  times.sort((a, b) => a - b);
  return { p50Us: times[Math.floor(times.length / 2)] ?? Number.NaN, p99Us: times[Math.floor(times.length * 0.99)] ?? Number.NaN, timed: times.length, share: times.length / Math.max(1, asked) };
}

/** How an app that wants the synchronous answer calls: `allowNow()`, and `allow()` only when it has none. */
const nowFirst = (member: RingLimitNode): Call => (key) => {
  const r = request(key);
  const d = member.allowNow(r);
  return d === undefined ? member.allow(r) : Promise.resolve(d);
};

export async function runLeasesBench(log: Log): Promise<string> {
  const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const progress = new Progress(log);
  const clusters: ChaosCluster[] = [];
  const members: RingLimitNode[] = [];
  const clients: { close(): void }[] = [];
  try {
    progress.note('starting 2 × 3 ringlimit serve processes (one cluster with --leases) and an embedded member joined to each…');
    const plain = await ChaosCluster.start(3, { cliPath, harness: false });
    clusters.push(plain);
    const leased = await ChaosCluster.start(3, { cliPath, harness: false, serveArgs: ['--leases', '--lease', `thresholdPerSec=${THRESHOLD_PER_SEC}`, '--lease', `leaseTtlMs=${LEASE_TTL_MS}`, '--lease', `idleMs=${IDLE_MS}`, '--lease', `maxLeases=${MAX_LEASES}`] });
    clusters.push(leased);
    await Promise.all([plain.waitForMembers(3, 20_000), leased.waitForMembers(3, 20_000)]);
    const memberOff = await createNode({ nodeId: 'bench-member-off', localClusterKey: true, port: 0, gossipPort: 0, join: [plain.node(0).gossip] });
    members.push(memberOff);
    const memberOn = await createNode({ nodeId: 'bench-member-on', localClusterKey: true, port: 0, gossipPort: 0, join: [leased.node(0).gossip], leases: { enabled: true, thresholdPerSec: THRESHOLD_PER_SEC, leaseTtlMs: LEASE_TTL_MS, idleMs: IDLE_MS, maxLeases: MAX_LEASES } });
    members.push(memberOn);
    for (let i = 0; i < 3_000 && (memberOff.owners().length < 4 || memberOn.owners().length < 4); i++) await new Promise((r) => setTimeout(r, 20));
    if (memberOff.owners().length < 4 || memberOn.owners().length < 4) throw new Error(`the embedded members did not join their clusters: owners ${memberOff.owners().length} and ${memberOn.owners().length}`);
    progress.note(`embedded members joined: owners ${memberOff.owners().join(', ')} / ${memberOn.owners().join(', ')}`);
    const clientOff = benchClient([plain.node(0).grpc], { ringAware: false });
    const clientOn = benchClient([leased.node(0).grpc], { ringAware: false });
    clients.push(clientOff, clientOn);
    const pidsOf = (cluster: ChaosCluster): number[] => [0, 1, 2].map((i) => cluster.node(i).child.pid ?? 0);
    const plainPids = pidsOf(plain);
    const leasedPids = pidsOf(leased);
    const pairs: Pair[] = [
      { path: 'embedded member (`node.allow`, joined to 3 `serve` nodes)', off: (key) => memberOff.allow(request(key)), on: (key) => memberOn.allow(request(key)) },
      { path: 'embedded member, `allowNow()` first, `allow()` when it has no answer', off: nowFirst(memberOff), on: nowFirst(memberOn) },
      { path: '3 `serve` nodes, `RingLimitClient` not ring-aware, through n0 (leases held by n0)', off: (key) => clientOff.allow(request(key)), on: (key) => clientOn.allow(request(key)) },
    ];
    const zipf = zipfKeys();
    progress.note(`Zipf key set: the top key takes ${(100 * topKeyShare(zipf)).toFixed(1)} % of the draws`);
    progress.plan((pairs.length * 2 * WARMUP_MS) / 1000 + (ROUNDS * pairs.length * 2 * (ROUND_WARMUP_MS + MEASURE_MS)) / 1000);
    for (const pair of pairs) {
      for (const [mode, call] of [['off', pair.off], ['on', pair.on]] as const) {
        await closedLoop(call, zipf.keys, CONCURRENCY, WARMUP_MS);
        progress.step(WARMUP_MS / 1000, `warmed up: ${pair.path}, leases ${mode}`);
      }
    }
    const results = new Map<Pair, { off: Measured[]; on: Measured[] }>(pairs.map((p) => [p, { off: [], on: [] }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const pair of pairs) {
        for (const mode of ['off', 'on'] as const) {
          await closedLoop(pair[mode], zipf.keys, CONCURRENCY, ROUND_WARMUP_MS);
          const r = await measured(pair[mode], zipf.keys, (mode === 'off' ? plainPids : leasedPids));
          results.get(pair)![mode].push(r);
          progress.step((ROUND_WARMUP_MS + MEASURE_MS) / 1000, `round ${round + 1}/${ROUNDS}: ${pair.path}, leases ${mode}: ${fmtRate(r.rate)}, p50 ${r.p50Ms.toFixed(3)} ms, CPU ${r.cpuUsPerDecision.toFixed(1)} µs/decision (this process ${r.ownUsPerDecision.toFixed(1)})`);
        }
      }
    }
    // Timed right after a run on the member with leases, while its slices are current.
    await closedLoop(pairs[0]!.on, zipf.keys, CONCURRENCY, ROUND_WARMUP_MS);
    const timed = await timeLeased(memberOn, zipf.keys);
    const holder = memberOn.stats().leases.holder;
    progress.note(`leased allowNow: p50 ${timed.p50Us.toFixed(2)} µs, p99 ${timed.p99Us.toFixed(2)} µs over ${timed.timed} calls (${(100 * timed.share).toFixed(1)} % of the calls for keys owned elsewhere answered from a slice); holder: ${JSON.stringify(holder)}`);
    const med = (l: Measured[], f: (m: Measured) => number): number => median(l.map(f));
    const rows = pairs.map((p) => {
      const { off, on } = results.get(p)!;
      const offRate = med(off, (m) => m.rate);
      const onRate = med(on, (m) => m.rate);
      const offCpu = med(off, (m) => m.cpuUsPerDecision);
      const onCpu = med(on, (m) => m.cpuUsPerDecision);
      return [p.path, fmtRate(offRate), fmtRate(onRate), `${(onRate / offRate).toFixed(2)}×`, `${offCpu.toFixed(1)} / ${onCpu.toFixed(1)} µs`, `${(offCpu / onCpu).toFixed(2)}×`, `${fmtUs(med(off, (m) => m.p50Ms))} / ${fmtUs(med(on, (m) => m.p50Ms))}`, `${fmtUs(med(off, (m) => m.p99Ms))} / ${fmtUs(med(on, (m) => m.p99Ms))}`];
    });
    return [
      '### Leases on Zipf traffic (closed loop, concurrency 64, fixed windows, all allowed)',
      '',
      `Zipf s = 1.0 over 100k keys (the top key takes ${(100 * topKeyShare(zipf)).toFixed(1)} % of the calls). Leases off and on in the same run, taking turns, medians of ${ROUNDS} rounds of ${MEASURE_MS / 1000} s; two clusters of 3 \`serve\` processes (the second with \`--leases --lease thresholdPerSec=${THRESHOLD_PER_SEC} --lease leaseTtlMs=${LEASE_TTL_MS} --lease idleMs=${IDLE_MS} --lease maxLeases=${MAX_LEASES}\`), an embedded member joined to each (the second with leases on). Every process shares the machine’s 2 cores.`,
      '',
      table(['path', 'leases off', 'leases on', 'on / off', 'CPU per decision, all processes (off / on)', 'CPU off / on', 'p50 of a call (off / on)', 'p99 (off / on)'], rows),
      '',
      'CPU per decision: the CPU time of this process (the embedded member, or the client) and of the 3 `serve` processes during each run, over its decisions — what a decision costs in machines, whatever else shares them; the machine’s other load moves decisions/s far more than it moves this.',
      '',
      `A leased decision at the embedded member (\`node.allowNow\` on keys owned elsewhere, after the runs): p50 **${timed.p50Us.toFixed(2)} µs**, p99 ${timed.p99Us.toFixed(2)} µs, over ${timed.timed.toLocaleString('en-US')} calls answered from a slice: ${(100 * timed.share).toFixed(1)} % of the member's Zipf calls for keys owned elsewhere, at ${CONCURRENCY} forwards in flight (the others found no slice, or one used up, and were forwarded). The member as a holder at the end: ${holder.leases} leases, ${holder.leasedDecisions.toLocaleString('en-US')} leased decisions, ${holder.asks.toLocaleString('en-US')} asks, ${holder.unitsGranted.toLocaleString('en-US')} units granted, ${holder.unitsReturned.toLocaleString('en-US')} given back, ${holder.unitsLost.toLocaleString('en-US')} lost (expired unused).`,
    ].join('\n');
  } finally {
    for (const c of clients) c.close();
    for (const m of members) await m.stop({ graceful: false }).catch(() => undefined);
    for (const cluster of clusters) await cluster.close();
  }
}
