/**
 * CPU at the loads most users have: an open loop at 1,000 and 10,000 decisions/s over 100
 * keys, CPU % of a core for the bench process (load generator + client) and for each
 * serving process, ringlimit beside rate-limiter-flexible on Redis in the same run.
 */
import { CpuMeter } from './cpu-meter.js';
import { openLoop } from './load.js';
import type { Contender } from './peers/redis.js';
import type { Progress } from './progress.js';
import { fmtRate, table } from './util.js';

export const LOW_RATES = [1_000, 10_000] as const;
const KEYS = Array.from({ length: 100 }, (_, i) => `low-${i}`);
const WARMUP_MS = 1_000;
const MEASURE_MS = 5_000;

export interface LowLoadRow {
  contender: Contender;
  rate: number;
  answered: number;
  /** % of a core. */
  clientPct: number;
  serverPcts: number[];
}

export function lowLoadSeconds(contenders: number): number {
  return (contenders * LOW_RATES.length * (WARMUP_MS + MEASURE_MS)) / 1000;
}

export async function measureLowLoad(contenders: readonly Contender[], progress: Progress): Promise<LowLoadRow[]> {
  const rows: LowLoadRow[] = [];
  for (const rate of LOW_RATES) {
    for (const c of contenders) {
      await openLoop(c.call, KEYS, { rate, durationMs: WARMUP_MS });
      const meter = new CpuMeter(c.pids?.() ?? []);
      meter.start();
      const run = await openLoop(c.call, KEYS, { rate, durationMs: MEASURE_MS, drainMs: 2_000 });
      const r = meter.stop();
      const row = { contender: c, rate, answered: run.answeredInSchedule, clientPct: (100 * r.selfSeconds) / r.wallSeconds, serverPcts: r.serverSeconds.map((s) => (100 * s) / r.wallSeconds) };
      rows.push(row);
      progress.step((WARMUP_MS + MEASURE_MS) / 1000, `low load ${fmtRate(rate)}: ${c.name}: bench process ${row.clientPct.toFixed(1)} %, servers ${row.serverPcts.map((p) => p.toFixed(1)).join(' + ')} %`);
    }
  }
  return rows;
}

/** One row per contender and rate; servers against the peer's at the same rate. */
export function lowLoadTable(rows: readonly LowLoadRow[], peer: Contender | undefined): string {
  const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
  return table(
    ['contender', 'offered', 'answered/s', 'bench process (load + client), % of a core', 'serving processes, % of a core', 'servers vs the peer', 'client vs the peer', 'CPU µs per decision, all processes'],
    rows.map((r) => {
      const base = rows.find((b) => b.contender === peer && b.rate === r.rate);
      const servers = sum(r.serverPcts);
      const perDecisionUs = ((r.clientPct + servers) / 100) * (1e6 / r.rate);
      return [
        r.contender.name,
        fmtRate(r.rate),
        fmtRate(r.answered / (MEASURE_MS / 1000)),
        r.clientPct.toFixed(1),
        r.serverPcts.length === 0 ? '–' : `${r.serverPcts.map((p) => p.toFixed(1)).join(' + ')}${r.serverPcts.length > 1 ? ` = ${servers.toFixed(1)}` : ''}`,
        base === undefined || sum(base.serverPcts) <= 0 ? '–' : `${(servers / sum(base.serverPcts)).toFixed(2)}×`,
        base === undefined || base.clientPct <= 0 ? '–' : `${(r.clientPct / base.clientPct).toFixed(2)}×`,
        perDecisionUs.toFixed(0),
      ];
    }),
  );
}
