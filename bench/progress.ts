/**
 * Progress lines for a long benchmark: the share of the planned work done, the time so far,
 * and the time left estimated from the pace so far. Work is counted in planned seconds
 * (a measurement's warm-up plus its window), so short and long steps weigh what they cost.
 */
import type { Log } from './util.js';

export class Progress {
  private planned = 0;
  private done = 0;
  private readonly started = performance.now();

  constructor(private readonly log: Log) {}

  /** Adds `seconds` of planned work. */
  plan(seconds: number): void {
    this.planned += seconds;
  }

  /** Logs one finished step that was planned at `seconds`. */
  step(seconds: number, line: string): void {
    this.done += seconds;
    const elapsed = this.elapsed();
    const left = this.planned > this.done ? `, ~${fmtSeconds((elapsed / this.done) * (this.planned - this.done))} left` : '';
    this.log(`[${Math.round((100 * this.done) / Math.max(this.planned, 1))} %, ${fmtSeconds(elapsed)}${left}] ${line}`);
  }

  /** Logs a line without counting work (a phase starting, a wait). */
  note(line: string): void {
    this.log(`[${fmtSeconds(this.elapsed())}] ${line}`);
  }

  private elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }
}

function fmtSeconds(s: number): string {
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s` : `${Math.round(s)} s`;
}
