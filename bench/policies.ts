/**
 * Policy paths against rate-limiter-flexible's RateLimiterMemory: policy handles, allow()
 * with one request shape and after six, and a request resolved from the policies against
 * the same request given in full. Each contender in fresh processes, paired with the peer.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEYS, type PolicyContender } from './policies-measure.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';
import { fmtRate, median, table, type Log } from './util.js';
import { FAIR_SHARE_CAPACITY_PER_SECOND, FAIR_SHARE_USERS, FAIR_SHARE_WINDOW_MS, simulateFairShare } from './fair-share-sim.js';
import { jainIndex } from '../src/limiter/fair-share.js';

const CONVERGENCE_NODES = 5;
const CHANGES = 20;

interface FairnessRun {
  windows: { jain: number; lightShortfall: number; totalError: number; perWeight: number[] }[];
}

/** The fair-share simulation (bench/fair-share-sim.ts), three 10 s windows, summarised. */
function measureFairnessSimulated(): FairnessRun {
  const capacity = (FAIR_SHARE_CAPACITY_PER_SECOND * FAIR_SHARE_WINDOW_MS) / 1000;
  const windows = simulateFairShare(3).map((admitted) => {
    const perWeight = [0, 1, 2, 3].map((i) => admitted[i]! / FAIR_SHARE_USERS[i]!.weight);
    const asked = FAIR_SHARE_USERS[4].perMs * FAIR_SHARE_WINDOW_MS * 2;
    const total = admitted.reduce((a, b) => a + b, 0);
    return { jain: jainIndex(perWeight), lightShortfall: Math.max(0, asked - admitted[4]! - admitted[5]!), totalError: (total - capacity) / capacity, perWeight };
  });
  return { windows };
}

/**
 * Five real nodes (SWIM on UDP with the LAN preset, gRPC peer streams) in this process: a
 * change on one, round-robin, and the time until every node has it in force.
 */
async function measureConvergence(log: Log): Promise<number[]> {
  const nodes: RingLimitNode[] = [];
  try {
    for (let i = 0; i < CONVERGENCE_NODES; i++) {
      nodes.push(await createNode({ nodeId: `p${i}`, port: 0, gossipPort: 0, join: i === 0 ? [] : [nodes[0]!.gossipAddress!], policies: { defaults: { '*': { limit: 1, window: '1m' } } } }));
    }
    const deadline = Date.now() + 10_000;
    while (!nodes.every((n) => n.members().length === CONVERGENCE_NODES) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const times: number[] = [];
    for (let change = 0; change < CHANGES; change++) {
      const started = performance.now();
      const version = nodes[change % CONVERGENCE_NODES]!.setPolicies({ defaults: { '*': { limit: 100 + change, window: '1m' } } });
      while (!nodes.every((n) => n.stats().policies.version === version)) {
        if (performance.now() - started > 10_000) throw new Error(`policies: version ${version} did not reach every node in 10 s`);
        await new Promise((r) => setImmediate(r));
      }
      times.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 100));
    }
    log(`policies: ${CHANGES} changes on ${CONVERGENCE_NODES} nodes, converged in p50 ${median(times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`);
    return times;
  } finally {
    await Promise.all(nodes.map((n) => n.stop({ graceful: false }).catch(() => undefined)));
  }
}

const PAIRS = 3;

function measureOnce(contender: PolicyContender): number {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'policies-measure.js');
  const result = spawnSync(process.execPath, [script, contender], { encoding: 'utf8', timeout: 300_000 });
  if (result.status !== 0) throw new Error(`measurement ${contender} failed: ${result.stderr}`);
  return (JSON.parse(result.stdout.trim().split('\n').pop()!) as { perSecond: number }).perSecond;
}

const OURS: [PolicyContender, string][] = [
  ['handle-six-shapes', '`limiter.policy(...)` handle, `search.allow(userId)`, after six request shapes were seen'],
  ['allow-one-shape', '`limiter.allow(request)`, one request shape'],
  ['allow-six-shapes', '`limiter.allow(request)`, after six request shapes were seen'],
  ['explicit', '`allow({ key, action, limit, windowMs })`: the request in full'],
  ['resolved', '`allow({ key, action })`: limit and window from the policies'],
  ['handle-manual-clock', 'the handle after six shapes, with a clock not read from the OS (as the local-decision table measures)'],
  ['allow-manual-clock', '`limiter.allow(request)`, one shape, with a clock not read from the OS'],
];

export async function runPoliciesBench(log: Log): Promise<string> {
  const rates = new Map<PolicyContender, number[]>();
  const ratios = new Map<PolicyContender, number[]>();
  for (let pair = 0; pair < PAIRS; pair++) {
    log(`policies: pair ${pair + 1}/${PAIRS}: rate-limiter-flexible…`);
    const peer = measureOnce('flexible');
    rates.set('flexible', [...(rates.get('flexible') ?? []), peer]);
    for (const [contender, label] of OURS) {
      const rate = measureOnce(contender);
      log(`policies: pair ${pair + 1}/${PAIRS}: ${label}: ${fmtRate(rate)} (${(rate / peer).toFixed(1)}× rate-limiter-flexible)`);
      rates.set(contender, [...(rates.get(contender) ?? []), rate]);
      ratios.set(contender, [...(ratios.get(contender) ?? []), rate / peer]);
    }
  }
  const convergence = await measureConvergence(log);
  log('policies: weighted fair share, 30 s of simulated time…');
  const fairness = measureFairnessSimulated();
  const sorted = convergence.slice().sort((a, b) => a - b);
  const explicit = rates.get('explicit')!;
  const resolved = rates.get('resolved')!;
  const resolvedVsExplicit = median(resolved.map((r, i) => r / explicit[i]!));
  const rows = [
    ['rate-limiter-flexible `RateLimiterMemory.consume()` (awaited)', fmtRate(median(rates.get('flexible')!)), '1.0×'],
    ...OURS.map(([c, label]) => [label, fmtRate(median(rates.get(c)!)), `${median(ratios.get(c)!).toFixed(1)}×`]),
  ];
  return [
    '### Policies: handles, request shapes, resolved requests (one thread, system clock)',
    '',
    `${KEYS / 1000}k distinct keys in random order, a request object made per call, the system clock read on every call (about 40 ns here) except in the last two rows. Each rate is the median of ${PAIRS} fresh processes; each ratio the median of the per-pair ratios against rate-limiter-flexible measured just before. "Six request shapes": the process first made 200k calls through six call sites whose request objects differ in their properties, which makes the validation's property loads megamorphic.`,
    '',
    table(['path', 'decisions/s', 'against rate-limiter-flexible'], rows),
    '',
    `A request resolved from the policies runs at ${(resolvedVsExplicit * 100).toFixed(0)} % of the same request given in full (median of the per-pair ratios).`,
    '',
    `**Weighted fair share** (simulated time, ManualClock in 1 ms steps, one limiter; the same run as \`test/limiter/fair-share.test.ts\`, longer): capacity 2,000/s shared by heavy users of weights 1, 2, 5 and 10 asking 3,000/s each and two light users (weight 5) asking 40/s. Per 10 s window after 2 s: ${fairness.windows.map((w, i) => `window ${i + 1}: Jain index of the weight-normalised throughput ${w.jain.toFixed(4)}, heavy users per unit of weight ${w.perWeight.map((x) => x.toFixed(0)).join(' / ')}, light users short by ${w.lightShortfall} of the 800 they asked, total ${(w.totalError * 100).toFixed(2)} % against the capacity`).join('; ')}. Targets: Jain ≥ 0.99, total within 2 %. Across a cluster, \`test/node/policies.test.ts\` measures 3 nodes in real time (docs/policies.md).`,
    '',
    `**Cluster-wide change.** ${CONVERGENCE_NODES} nodes in one process (SWIM over UDP with the LAN preset, gRPC peer streams on 127.0.0.1), ${CHANGES} changes made on each node in turn: every node had the new version in force after p50 ${median(convergence).toFixed(1)} ms, p90 ${sorted[Math.floor(0.9 * (sorted.length - 1))]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms (target ≤ 1 s). The change is pushed over the peer streams at once; gossip carries the version, so a node that missed the push pulls the document.`,
  ].join('\n');
}
