/**
 * The two load generators of the cluster bench, both driving a `call(key)` function:
 * - closed loop: `concurrency` callers, each awaiting its answer before the next call;
 * - open loop: calls issued on a fixed schedule whether or not answers came back, latency
 *   taken from each call's scheduled send time (no coordinated omission: a stall delays
 *   the calls due meanwhile, and their latency shows it).
 * Latencies go into a Histogram (log-linear buckets, see histogram.ts).
 */
import type { CpuPerDecision } from './cpu-meter.js';
import { Histogram } from './histogram.js';

export type Call = (key: string) => Promise<unknown>;

export interface LoopResult {
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** Calls answered (closedLoop). */
  count?: number;
  /** CPU per decision of the bench process and of the contender's server processes (cluster.ts meters it). */
  cpu?: CpuPerDecision;
}

/** One open-loop run, as measured. */
export interface OpenLoopRun {
  offered: number;
  histogram: Histogram;
  /** How late each call was issued against its schedule: the generator's own share of the latency. */
  lag: Histogram;
  /** Answers (and failures) that arrived while the schedule ran, and how long it ran. */
  answeredInSchedule: number;
  elapsedMs: number;
  /** Scheduled calls not issued because `maxOutstanding` calls were awaiting answers. */
  dropped: number;
  /** Calls that failed (rejections), counted apart from the latencies. */
  errors: number;
  /** Calls still unanswered when the drain wait ended. */
  unanswered: number;
}

/** Several runs at one offered rate, pooled. */
export interface OpenLoopResult {
  offered: number;
  /** Answers per second while the schedules ran. */
  answeredRate: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Send lag (issued minus scheduled time) at p50 and p99: included in the latencies above. */
  lagP50Ms: number;
  lagP99Ms: number;
  dropped: number;
  errors: number;
  unanswered: number;
  /** Answered at least KEEP_UP of the offered rate, nothing dropped, failed or left unanswered. */
  keptUp: boolean;
}

/** A contender keeps up with an offered rate when it answers at least this share of it while the schedule runs. */
export const KEEP_UP = 0.97;

export function pool(runs: readonly OpenLoopRun[]): OpenLoopResult {
  const histogram = new Histogram();
  const lag = new Histogram();
  let answered = 0;
  let elapsedMs = 0;
  let dropped = 0;
  let errors = 0;
  let unanswered = 0;
  for (const run of runs) {
    histogram.add(run.histogram);
    lag.add(run.lag);
    answered += run.answeredInSchedule;
    elapsedMs += run.elapsedMs;
    dropped += run.dropped;
    errors += run.errors;
    unanswered += run.unanswered;
  }
  const offered = runs[0]?.offered ?? 0;
  const answeredRate = (1000 * answered) / elapsedMs;
  return {
    offered,
    answeredRate,
    p50Ms: histogram.percentileMs(0.5),
    p99Ms: histogram.percentileMs(0.99),
    p999Ms: histogram.percentileMs(0.999),
    maxMs: histogram.maxMs(),
    lagP50Ms: lag.percentileMs(0.5),
    lagP99Ms: lag.percentileMs(0.99),
    dropped,
    errors,
    unanswered,
    keptUp: answeredRate >= KEEP_UP * offered && dropped === 0 && errors === 0 && unanswered === 0,
  };
}

/** Open-loop knobs. */
export interface OpenLoopOptions {
  /** Calls per second. */
  rate: number;
  durationMs: number;
  /** Calls awaiting answers at most; a call due beyond it is dropped (and counted). */
  maxOutstanding: number;
  /** After the schedule, how long to wait for outstanding answers. */
  drainMs: number;
  /** The timer period: every tick issues the calls due since the last one. */
  tickMs: number;
}

export const openLoopDefaults: Omit<OpenLoopOptions, 'rate' | 'durationMs'> = { maxOutstanding: 100_000, drainMs: 15_000, tickMs: 1 };

/** `concurrency` callers each awaiting one call at a time, for durationMs; keys taken in turn from `keys`. */
export async function closedLoop(call: Call, keys: readonly string[], concurrency: number, durationMs: number): Promise<LoopResult> {
  const histogram = new Histogram();
  let next = 0;
  const started = performance.now();
  const endAt = started + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < endAt) {
        const key = keys[next++ % keys.length]!;
        const t0 = performance.now();
        await call(key);
        histogram.recordMs(performance.now() - t0);
      }
    }),
  );
  const elapsed = performance.now() - started;
  return { rate: (1000 * histogram.count) / elapsed, p50Ms: histogram.percentileMs(0.5), p99Ms: histogram.percentileMs(0.99), count: histogram.count };
}

/**
 * Calls at `rate` per second for durationMs: a timer every tickMs issues, in one batch,
 * every call whose scheduled time (start + i / rate) has come. Each call's latency runs
 * from its scheduled time to its answer. Then waits (at most drainMs) for the answers.
 */
export async function openLoop(call: Call, keys: readonly string[], options: Partial<OpenLoopOptions> & Pick<OpenLoopOptions, 'rate' | 'durationMs'>): Promise<OpenLoopRun> {
  const o: OpenLoopOptions = { ...openLoopDefaults, ...options };
  // One per run: an answer arriving after the drain wait must not land in the next run's figures.
  const histogram = new Histogram();
  const lag = new Histogram();
  const intervalMs = 1000 / o.rate;
  const total = Math.floor((o.durationMs * o.rate) / 1000);
  let issued = 0;
  let outstanding = 0;
  let dropped = 0;
  let errors = 0;
  let answeredInSchedule = 0;
  let scheduleOver = false;
  let drained: (() => void) | undefined;
  const settle = (scheduledAt: number, ok: boolean): void => {
    outstanding--;
    if (ok) histogram.recordMs(performance.now() - scheduledAt);
    else errors++;
    if (!scheduleOver) answeredInSchedule++;
    if (outstanding === 0) drained?.();
  };
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - started) / intervalMs) + 1);
      for (; issued < due; issued++) {
        if (outstanding >= o.maxOutstanding) {
          dropped++;
          continue;
        }
        const scheduledAt = started + issued * intervalMs;
        lag.recordMs(now - scheduledAt);
        outstanding++;
        call(keys[issued % keys.length]!).then(
          () => settle(scheduledAt, true),
          () => settle(scheduledAt, false),
        );
      }
      if (issued >= total) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, o.tickMs);
    tick();
  });
  // The schedule's last call is due at `durationMs`; answers up to then count as kept pace.
  const scheduleEnd = started + o.durationMs;
  if (performance.now() < scheduleEnd) await new Promise((r) => setTimeout(r, scheduleEnd - performance.now()));
  scheduleOver = true;
  const elapsed = performance.now() - started;
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, o.drainMs);
      drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  return { offered: o.rate, histogram, lag, answeredInSchedule, elapsedMs: elapsed, dropped, errors, unanswered: outstanding };
}
