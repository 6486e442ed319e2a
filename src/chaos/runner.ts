import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { RingLimitError } from '../common/errors.js';
import { seededRng } from '../common/rng.js';
import { ChaosCluster } from './cluster.js';
import { startLoadProcess, type LoadProcess } from './load-process.js';
import { CHAOS_ACTION, type LoadSpec } from './loadgen.js';
import { evaluate, type LoggedDecision, type PhaseTimes } from './model.js';
import { allowedPerSecond, renderChart, renderReport } from './report.js';
import { scenarios } from './scenarios.js';
import type { ChaosOptions, ScenarioLoad, ScenarioOutcome, ScenarioResult } from './types.js';
import { sleep } from './wait.js';

const DAY_MS = 86_400_000;
const CONVERGE_TIMEOUT_MS = 15_000;
const LOAD_GENERATORS = 2;

/** One fixed window longer than the run makes the exact answer per key "the first `limit`, then none"; so never cross midnight UTC. */
async function avoidDayBoundary(runMs: number): Promise<void> {
  const msIntoDay = Date.now() % DAY_MS;
  if (msIntoDay > DAY_MS - runMs - 10_000 || msIntoDay < 10_000) await sleep(DAY_MS - msIntoDay + 15_000);
}

const keyPrefixOf = (key: string, scenarioSeed: number): string => `${key}-${scenarioSeed}-`;

function loadSpecs(key: string, o: ChaosOptions, scenarioSeed: number, nodes: string[], load: ScenarioLoad): LoadSpec[] {
  const rng = seededRng(scenarioSeed);
  return Array.from({ length: LOAD_GENERATORS }, (_, g) => ({
    nodes,
    keyCount: load.keyCount,
    distribution: o.distribution,
    ratePerSec: o.ratePerSec / LOAD_GENERATORS,
    durationMs: o.warmupMs + o.afterMs,
    limit: load.limit,
    global: load.global,
    ringAware: load.ringAware,
    windowMs: DAY_MS,
    algorithm: key === 'skew' ? 'token-bucket' : 'fixed-window',
    seed: rng.int(0x7fffffff) + g,
    keyPrefix: keyPrefixOf(key, scenarioSeed),
    ...(load.apiToken === undefined ? {} : { token: load.apiToken }),
  }));
}

function progressLine(key: string, startedMs: number, log: LoggedDecision[], phases: PhaseTimes): string {
  let allowed = 0;
  let errors = 0;
  for (const d of log) {
    if (d.outcome === 1) allowed++;
    else if (d.outcome === -1) errors++;
  }
  const phase = phases.faultAtMs === Infinity ? '' : phases.faultEndMs === Infinity ? ', fault on' : ', recovering';
  return `  ${key}: +${((Date.now() - startedMs) / 1000).toFixed(0)} s, ${log.length} decisions, ${allowed} allowed, ${errors} errors${phase}`;
}

async function runScenario(key: string, o: ChaosOptions, scenarioSeed: number): Promise<ScenarioResult> {
  const scenario = scenarios[key];
  if (scenario === undefined) throw new RingLimitError('INVALID_ARGUMENT', `unknown scenario ${key}; known: ${Object.keys(scenarios).join(', ')}`, 'scenarios');
  await avoidDayBoundary(o.warmupMs + o.afterMs + 60_000);
  const load: ScenarioLoad = { keyCount: o.keyCount, limit: o.limit, global: false, ringAware: true, ...scenario.load };
  const started = Date.now();
  const dataDir = mkdtempSync(join(tmpdir(), `ringlimit-chaos-${key}-`));
  const cluster = await ChaosCluster.start(o.nodes, { serveArgs: scenario.serveArgs?.(dataDir) ?? [], apiToken: load.apiToken }).catch((error: unknown) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  });
  const loads: LoadProcess[] = [];
  try {
    if ((await cluster.until(() => cluster.allLiveSee(o.nodes), CONVERGE_TIMEOUT_MS)) < 0) o.log(`  ${key}: the cluster did not converge within ${CONVERGE_TIMEOUT_MS} ms; running anyway`);
    const log: LoggedDecision[] = [];
    const phases: PhaseTimes = { faultAtMs: Infinity, faultEndMs: Infinity };
    loads.push(...loadSpecs(key, o, scenarioSeed, cluster.grpcAddresses(), load).map((spec) => startLoadProcess(spec, log)));
    const progress = setInterval(() => o.progress(progressLine(key, started, log, phases)), 1_000);
    progress.unref();
    let outcome: ScenarioOutcome;
    try {
      await sleep(o.warmupMs);
      phases.faultAtMs = Date.now();
      o.log(`  ${key}: fault at +${phases.faultAtMs - started} ms`);
      const context = { keyPrefix: keyPrefixOf(key, scenarioSeed), keyCount: load.keyCount, action: CHAOS_ACTION, limit: load.limit };
      outcome = await scenario.run(cluster, { faultEnd: () => void (phases.faultEndMs = Date.now()) }, context);
      if (phases.faultEndMs === Infinity) phases.faultEndMs = Date.now();
      await Promise.all(loads.map((l) => l.done));
    } finally {
      clearInterval(progress);
      o.progress('');
    }
    if (process.env['RINGLIMIT_CHAOS_DEBUG']) {
      for (let i = 0; i < cluster.size; i++) o.log(`  ${cluster.node(i).nodeId}: ${(await cluster.stats(i)) ?? 'no stats answer'}`);
    }
    const accuracy = evaluate(log, load.limit, phases);
    const series = allowedPerSecond(log, phases.faultAtMs, phases.faultEndMs, load.keyCount * load.limit);
    const pass = scenario.pass(accuracy, outcome, { nodes: o.nodes, ratePerSec: o.ratePerSec, keyCount: load.keyCount });
    return { key, name: scenario.name, target: scenario.target, pass, accuracy, outcome, durationMs: Date.now() - started, series };
  } finally {
    for (const l of loads) l.stop();
    await cluster.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function summary(result: ScenarioResult): string {
  const a = result.accuracy;
  const { detectMs, stableMs, bystander } = result.outcome;
  return (
    `chaos: ${result.key} ${result.pass ? 'PASS' : 'FAIL'}: ${a.decisions} decisions, over ${a.overPct.toFixed(2)} %, under ${a.underPct.toFixed(2)} % (during the fault ${a.underDuringPct.toFixed(2)} %), errors ${a.errors}, p99 ${a.p99Ms} ms (after 2 s: ${a.p99WarmMs} ms)` +
    `${detectMs !== undefined ? `, detect ${detectMs} ms` : ''}${stableMs !== undefined ? `, stable ${stableMs} ms` : ''}` +
    `${bystander !== undefined ? `, bystander p99 ${bystander.steadyP99Ms} ms steady / ${bystander.attackP99Ms} ms under attack (${bystander.steadyCalls}/${bystander.attackCalls} calls), ${bystander.errors} errors` : ''}`
  );
}

function writeReport(o: ChaosOptions, results: ScenarioResult[]): void {
  mkdirSync(dirname(o.out), { recursive: true });
  const base = o.out.replace(/\.md$/, '');
  writeFileSync(`${base}.svg`, renderChart(results));
  writeFileSync(o.out, renderReport(results, o, `${base}.svg`));
  writeFileSync(`${base}.json`, `${JSON.stringify({ seed: o.seed, options: { ...o, log: undefined, progress: undefined }, results }, null, 2)}\n`);
}

export async function runChaos(o: ChaosOptions): Promise<ScenarioResult[]> {
  // Exiting runs each open cluster's exit hook, which kills its processes.
  const onSignal = () => process.exit(130);
  process.once('SIGINT', onSignal);
  o.log(`chaos: seed ${o.seed}, ${o.nodes} nodes, scenarios ${o.scenarios.join(', ')}`);
  const results: ScenarioResult[] = [];
  const rng = seededRng(o.seed);
  try {
    for (const key of o.scenarios) {
      o.log(`chaos: ${key}…`);
      const result = await runScenario(key, o, rng.int(0x7fffffff));
      o.log(summary(result));
      results.push(result);
    }
  } finally {
    process.off('SIGINT', onSignal);
  }
  writeReport(o, results);
  o.log(`chaos: report written to ${o.out}`);
  return results;
}
