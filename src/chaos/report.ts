import type { ChaosOptions, ScenarioResult } from './runner.js';

const ms = (v: number | undefined) => (v === undefined ? '—' : v < 0 ? 'did not' : `${v} ms`);

/** The Markdown table of a chaos run. */
export function renderReport(results: ScenarioResult[], o: Omit<ChaosOptions, 'log'>): string {
  const rows = results.map((r) => {
    const a = r.accuracy;
    return `| ${r.name} | ${r.target} | ${r.pass ? '**pass**' : '**FAIL**'} | ${a.overPct.toFixed(2)} % (${a.overUnits}: ${a.overByPhase.before}/${a.overByPhase.during}/${a.overByPhase.after}) | ${a.underPct.toFixed(2)} % | ${a.errors} | ${a.p50Ms} / ${a.p99Ms} / ${a.maxMs} ms | ${ms(r.outcome.detectMs)} | ${ms(r.outcome.stableMs)} | ${a.decisions} |`;
  });
  return [
    `# Chaos run — ${new Date().toISOString()}`,
    '',
    `Seed ${o.seed} (\`ringlimit chaos --seed ${o.seed}\` replays the schedule), ${o.nodes} \`ringlimit serve\` processes on 127.0.0.1, 2 load-generator processes at ${o.ratePerSec} decisions/s over ${o.keyCount} keys (${o.distribution}), limit ${o.limit} per key in one window longer than the run; warm-up ${o.warmupMs} ms (every key reaches its limit), then the fault, then ${o.afterMs} ms of load in all.`,
    '',
    'Over-admission: allowed beyond the exact limit, in % of the limits of the keys used (units before / during / after the fault). Under-admission: rejected while the key still had capacity. Errors: calls that failed at the client after its own failover. Latency from the client: p50 / p99 / max.',
    '',
    '| scenario | target | result | over-admission | under-admission | client errors | latency | failure detected in | stable again after | decisions |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
