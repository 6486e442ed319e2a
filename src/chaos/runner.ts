import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RingLimitClient } from '../node/api/client.js';
import { randomSeed, seededRng } from '../common/rng.js';
import type { LoadSpec } from './loadgen.js';
import { evaluate, type Accuracy, type LoggedDecision } from './model.js';
import { killEverything, membersSeenBy, sendFault, signal, sleep, startNodeProcess, waitExit, type NodeProcess } from './processes.js';
import { scenarios, type ScenarioOutcome } from './scenarios.js';
import { allowedPerSecond, renderChart, renderReport, type AllowedSeries } from './report.js';

const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));
const DAY_MS = 86_400_000;

export interface ChaosOptions {
  scenarios: string[];
  nodes: number;
  /** Load per scenario: warm-up (keys reach their limits), then the fault, then recovery. */
  warmupMs: number;
  afterMs: number;
  ratePerSec: number;
  keyCount: number;
  limit: number;
  distribution: LoadSpec['distribution'];
  seed: number;
  out: string;
  log: (line: string) => void;
  /** A live status line, rewritten in place ('' clears it). */
  progress: (line: string) => void;
}

export interface ScenarioResult {
  key: string;
  name: string;
  target: string;
  pass: boolean;
  accuracy: Accuracy;
  outcome: ScenarioOutcome;
  durationMs: number;
  series: AllowedSeries;
}

/** What a scenario can do to the cluster it runs on. Every wait is bounded. */
export interface ChaosContext {
  nodes: NodeProcess[];
  kill(i: number): void;
  signal(i: number, sig: NodeJS.Signals): void;
  stopGracefully(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  partition(left: number[], right: number[]): void;
  /** `from` cannot send to `to` (gossip and peer frames); the other way still works. */
  partitionOneWay(from: number[], to: number[]): void;
  heal(): void;
  clock(i: number, offsetMs: number, driftPpm: number): void;
  /** Ms until `check` holds (polled), or -1 if it did not within timeoutMs. */
  until(check: () => Promise<boolean>, timeoutMs: number): Promise<number>;
  allLiveSee(members: number): Promise<boolean>;
  sleep(ms: number): Promise<void>;
  faultEnd(): void;
}

async function startCluster(n: number): Promise<NodeProcess[]> {
  const nodes: NodeProcess[] = [await startNodeProcess('n0', [])];
  const rest = await Promise.all(Array.from({ length: n - 1 }, (_, i) => startNodeProcess(`n${i + 1}`, [nodes[0]!.gossip])));
  return [...nodes, ...rest];
}

function runLoadgen(spec: LoadSpec, into: LoggedDecision[]): Promise<void> {
  const child = spawn(process.execPath, [LOADGEN, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    if (line.startsWith('[')) {
      const [sentAtMs, key, outcome, latencyMs] = JSON.parse(line) as [number, number, number, number];
      into.push({ sentAtMs, key, outcome, latencyMs });
    }
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`load generator exited with ${code}`))));
  });
}

async function runScenario(key: string, o: ChaosOptions, scenarioSeed: number): Promise<ScenarioResult> {
  const scenario = scenarios[key];
  if (scenario === undefined) throw new Error(`unknown scenario ${key}; known: ${Object.keys(scenarios).join(', ')}`);
  const started = Date.now();
  // One fixed window longer than the run: the exact answer per key is "the first `limit`, then none".
  const msIntoDay = Date.now() % DAY_MS;
  const runMs = o.warmupMs + o.afterMs + 60_000;
  if (msIntoDay > DAY_MS - runMs - 10_000 || msIntoDay < 10_000) await sleep(DAY_MS - msIntoDay + 15_000);
  const nodes = await startCluster(o.nodes);
  const health = new RingLimitClient({ nodes: nodes.map((n) => n.grpc), timeoutMs: 300 });
  try {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const seen = await Promise.all(nodes.map((_, i) => membersSeenBy(health, i)));
      if (seen.every((m) => m === o.nodes)) break;
      await sleep(100);
    }
    const log: LoggedDecision[] = [];
    let faultAtMs = Infinity;
    let faultEndMs = Infinity;
    const rng = seededRng(scenarioSeed);
    const loadMs = o.warmupMs + o.afterMs;
    const generators = [0, 1].map((g) =>
      runLoadgen(
        {
          nodes: nodes.map((n) => n.grpc),
          keyCount: o.keyCount,
          distribution: o.distribution,
          ratePerSec: o.ratePerSec / 2,
          durationMs: loadMs,
          limit: o.limit,
          windowMs: DAY_MS,
          algorithm: key === 'skew' ? 'token-bucket' : 'fixed-window',
          seed: rng.int(0x7fffffff) + g,
          keyPrefix: `${key}-${scenarioSeed}-`,
        },
        log,
      ),
    );
    const restartPorts = new Map<number, { grpc: string; gossip: string }>();
    const ctx: ChaosContext = {
      nodes,
      kill: (i) => {
        restartPorts.set(i, { grpc: nodes[i]!.grpc, gossip: nodes[i]!.gossip });
        signal(nodes[i]!, 'SIGKILL');
        nodes[i]!.stopped = true;
      },
      signal: (i, sig) => signal(nodes[i]!, sig),
      stopGracefully: async (i) => {
        restartPorts.set(i, { grpc: nodes[i]!.grpc, gossip: nodes[i]!.gossip });
        signal(nodes[i]!, 'SIGTERM');
        await waitExit(nodes[i]!, 10_000);
        nodes[i]!.stopped = true;
      },
      restart: async (i) => {
        await waitExit(nodes[i]!, 5_000);
        const live = nodes.filter((n, j) => j !== i && !n.stopped);
        nodes[i] = await startNodeProcess(nodes[i]!.nodeId, live.map((n) => n.gossip), restartPorts.get(i));
      },
      partition: (left, right) => {
        for (const [from, to] of [
          [left, right],
          [right, left],
        ] as const) {
          for (const i of from) {
            sendFault(nodes[i]!, {
              op: 'block',
              gossipTo: to.map((j) => nodes[j]!.gossip),
              gossipFrom: to.map((j) => nodes[j]!.gossip),
              peersTo: to.map((j) => nodes[j]!.grpc),
              peersFrom: to.map((j) => nodes[j]!.nodeId),
            });
          }
        }
      },
      partitionOneWay: (from, to) => {
        for (const i of from) sendFault(nodes[i]!, { op: 'block', gossipTo: to.map((j) => nodes[j]!.gossip), peersTo: to.map((j) => nodes[j]!.grpc) });
        for (const j of to) sendFault(nodes[j]!, { op: 'block', gossipFrom: from.map((i) => nodes[i]!.gossip), peersFrom: from.map((i) => nodes[i]!.nodeId) });
      },
      heal: () => nodes.forEach((n) => sendFault(n, { op: 'heal' })),
      clock: (i, offsetMs, driftPpm) => sendFault(nodes[i]!, { op: 'clock', offsetMs, driftPpm }),
      until: async (check, timeoutMs) => {
        const t0 = Date.now();
        while (Date.now() - t0 < timeoutMs) {
          if (await check()) return Date.now() - t0;
          await sleep(50);
        }
        return -1;
      },
      allLiveSee: async (members) => {
        const live = nodes.map((n, i) => [n, i] as const).filter(([n]) => !n.stopped && n.child.exitCode === null);
        const probe = new RingLimitClient({ nodes: live.map(([n]) => n.grpc), timeoutMs: 300 });
        try {
          const seen = await Promise.all(live.map((_, k) => membersSeenBy(probe, k)));
          return seen.every((m) => m === members);
        } finally {
          probe.close();
        }
      },
      sleep,
      faultEnd: () => {
        faultEndMs = Date.now();
      },
    };
    const progress = setInterval(() => {
      let allowed = 0;
      let errors = 0;
      for (const d of log) {
        if (d.outcome === 1) allowed++;
        else if (d.outcome === -1) errors++;
      }
      o.progress(`  ${key}: +${((Date.now() - started) / 1000).toFixed(0)} s, ${log.length} decisions, ${allowed} allowed, ${errors} errors${faultAtMs === Infinity ? '' : faultEndMs === Infinity ? ', fault on' : ', recovering'}`);
    }, 1_000);
    progress.unref();
    await sleep(o.warmupMs);
    faultAtMs = Date.now();
    o.log(`  ${key}: fault at +${faultAtMs - started} ms`);
    const outcome = await scenario.run(ctx);
    if (faultEndMs === Infinity) faultEndMs = Date.now();
    await Promise.all(generators);
    clearInterval(progress);
    o.progress('');
    if (process.env['RINGLIMIT_CHAOS_DEBUG']) {
      for (const n of nodes) {
        n.lines.once('line', (line) => o.log(`  ${n.nodeId}: ${line}`));
        sendFault(n, { op: 'stats' });
      }
      await sleep(300);
    }
    const accuracy = evaluate(log, o.limit, { faultAtMs, faultEndMs });
    const series = allowedPerSecond(log, faultAtMs, faultEndMs, o.keyCount * o.limit);
    return { key, name: scenario.name, target: scenario.target, pass: scenario.pass(accuracy, outcome), accuracy, outcome, durationMs: Date.now() - started, series };
  } finally {
    health.close();
    for (const n of nodes) signal(n, 'SIGKILL');
    killEverything();
  }
}

export async function runChaos(o: ChaosOptions): Promise<ScenarioResult[]> {
  const onSignal = () => {
    killEverything();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  o.log(`chaos: seed ${o.seed}, ${o.nodes} nodes, scenarios ${o.scenarios.join(', ')}`);
  const results: ScenarioResult[] = [];
  const rng = seededRng(o.seed);
  try {
    for (const key of o.scenarios) {
      o.log(`chaos: ${key}…`);
      const result = await runScenario(key, o, rng.int(0x7fffffff));
      const a = result.accuracy;
      o.log(
        `chaos: ${key} ${result.pass ? 'PASS' : 'FAIL'}: ${a.decisions} decisions, over ${a.overPct.toFixed(2)} %, under ${a.underPct.toFixed(2)} %, errors ${a.errors}, p99 ${a.p99Ms} ms${result.outcome.detectMs !== undefined ? `, detect ${result.outcome.detectMs} ms` : ''}${result.outcome.stableMs !== undefined ? `, stable ${result.outcome.stableMs} ms` : ''}`,
      );
      results.push(result);
    }
  } finally {
    process.off('SIGINT', onSignal);
    killEverything();
  }
  mkdirSync(dirname(o.out), { recursive: true });
  const chart = o.out.replace(/\.md$/, '') + '.svg';
  writeFileSync(chart, renderChart(results));
  writeFileSync(o.out, renderReport(results, o, chart));
  writeFileSync(o.out.replace(/\.md$/, '') + '.json', `${JSON.stringify({ seed: o.seed, options: { ...o, log: undefined, progress: undefined }, results }, null, 2)}\n`);
  o.log(`chaos: report written to ${o.out}`);
  return results;
}

export const chaosDefaults: Omit<ChaosOptions, 'log' | 'progress'> = {
  scenarios: [],
  nodes: 5,
  warmupMs: 8_000,
  afterMs: 8_000,
  ratePerSec: 2_000,
  keyCount: 100,
  limit: 100,
  distribution: 'uniform',
  seed: randomSeed(),
  out: 'docs/reliability-latest.md',
};
