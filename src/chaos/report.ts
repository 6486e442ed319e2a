import { basename } from 'node:path';
import type { LoggedDecision } from './model.js';
import type { AllowedSeries, ChaosOptions, ScenarioResult } from './types.js';

export function allowedPerSecond(log: LoggedDecision[], faultAtMs: number, faultEndMs: number, exactTotal: number): AllowedSeries {
  let start = Infinity;
  let end = -Infinity;
  for (const d of log) {
    if (d.sentAtMs < start) start = d.sentAtMs;
    if (d.sentAtMs > end) end = d.sentAtMs;
  }
  const allowed: number[] = new Array<number>(log.length === 0 ? 0 : Math.floor((end - start) / 1000) + 1).fill(0);
  for (const d of log) if (d.outcome === 1) allowed[Math.floor((d.sentAtMs - start) / 1000)]!++;
  const cumulative: number[] = [];
  let sum = 0;
  for (const a of allowed) cumulative.push((sum += a));
  return { allowed, faultAtS: (faultAtMs - start) / 1000, faultEndS: (faultEndMs - start) / 1000, exactTotal, cumulative };
}

/** One small panel per scenario: cumulative allowed against the exact total, the fault shaded. */
export function renderChart(results: ScenarioResult[]): string {
  const w = 320;
  const h = 170;
  const pad = 30;
  const cols = 2;
  const rows = Math.ceil(results.length / cols);
  const panels = results.map((r, i) => {
    const x0 = (i % cols) * (w + 20) + 10;
    const y0 = Math.floor(i / cols) * (h + 30) + 10;
    const s = r.series;
    const seconds = Math.max(1, s.cumulative.length);
    const top = Math.max(s.exactTotal * 1.25, ...s.cumulative);
    const px = (t: number) => x0 + pad + (t / seconds) * (w - pad - 10);
    const py = (v: number) => y0 + h - pad + 10 - (v / top) * (h - pad - 10);
    const line = s.cumulative.map((v, t) => `${px(t + 1).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
    const fault = Number.isFinite(s.faultAtS)
      ? `<rect x="${px(s.faultAtS).toFixed(1)}" y="${y0 + 10}" width="${Math.max(2, px(Math.min(seconds, s.faultEndS)) - px(s.faultAtS)).toFixed(1)}" height="${h - pad}" fill="#f4c7c3"/>`
      : '';
    return [
      `<text x="${x0 + pad}" y="${y0 + 6}" font-size="11">${r.key}: ${r.pass ? 'pass' : 'FAIL'}, over ${r.accuracy.overPct.toFixed(2)} %</text>`,
      fault,
      `<line x1="${px(0)}" y1="${py(s.exactTotal).toFixed(1)}" x2="${px(seconds)}" y2="${py(s.exactTotal).toFixed(1)}" stroke="#888" stroke-dasharray="4 3"/>`,
      `<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="${line}"/>`,
      `<line x1="${px(0)}" y1="${py(0)}" x2="${px(seconds)}" y2="${py(0)}" stroke="#333"/>`,
      `<text x="${px(seconds) - 40}" y="${py(0) + 12}" font-size="9">${seconds} s</text>`,
      `<text x="${x0}" y="${py(s.exactTotal) + 3}" font-size="9">exact</text>`,
    ].join('');
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${cols * (w + 20) + 10}" height="${rows * (h + 30) + 20}" font-family="sans-serif">${panels.join('')}</svg>\n`;
}

const ms = (v: number | undefined) => (v === undefined ? '—' : v < 0 ? 'did not' : `${v} ms`);

/** The Markdown table of a chaos run. */
export function renderReport(results: ScenarioResult[], o: Omit<ChaosOptions, 'log' | 'progress'>, chartPath: string): string {
  const rows = results.map((r) => {
    const a = r.accuracy;
    return `| ${r.name} | ${r.target} | ${r.pass ? '**pass**' : '**FAIL**'} | ${a.overPct.toFixed(2)} % (${a.overUnits}: ${a.overByPhase.before}/${a.overByPhase.during}/${a.overByPhase.after}) | ${a.underPct.toFixed(2)} %; during the fault ${a.underDuringPct.toFixed(2)} % (${a.underByPhase.before}/${a.underByPhase.during}/${a.underByPhase.after}) | ${a.errors} | ${a.p50Ms} / ${a.p99Ms} / ${a.maxMs} ms | ${a.p99WarmMs} ms | ${ms(r.outcome.detectMs)} | ${ms(r.outcome.stableMs)} | ${a.decisions} |`;
  });
  return [
    `# Chaos run — ${new Date().toISOString()}`,
    '',
    `Seed ${o.seed} (\`ringlimit chaos --seed ${o.seed}\` replays the schedule), ${o.nodes} \`ringlimit serve\` processes on 127.0.0.1, 2 load-generator processes at ${o.ratePerSec} decisions/s over ${o.keyCount} keys (${o.distribution}), limit ${o.limit} per key in one window longer than the run; warm-up ${o.warmupMs} ms (every key reaches its limit), then the fault, then ${o.afterMs} ms of load in all.`,
    '',
    'Over-admission: allowed beyond the exact limit, in % of the limits of the keys used (units before / during / after the fault). Under-admission: requests never admitted although the key ended below its limit, in % of the limits; then the refusals made while the key had room at that moment (counting, in send order, what was allowed and refused with room before), during the fault in %, and in units before / during / after it: a refusal made up for after the fault counts there, not in the first figure. Errors: calls that failed at the client after its own failover. Latency from the client: p50 / p99 / max over the whole run, and the p99 of what was sent after the first 2 s of load (the processes have just started: cold JIT, new streams).',
    '',
    '| scenario | target | result | over-admission | under-admission | client errors | latency | p99 after 2 s | failure detected in | stable again after | decisions |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `![Cumulative allowed decisions against the exact total, fault shaded](${basename(chartPath)})`,
    '',
    'Chart: cumulative allowed decisions per scenario (blue) against what an exact limiter allows in all (dashed), the fault shaded. A line that rises above the dashed one after the fault is over-admission.',
    '',
  ].join('\n');
}
