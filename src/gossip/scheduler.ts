import { ManualClock, systemClock, type Clock } from '../common/clock.js';

export type Cancel = () => void;

/** Timer seam: real timers in production, a manual queue in simulations so runs replay exactly. */
export interface Scheduler {
  readonly clock: Clock;
  /**
   * Run `fn` after `delayMs`. Real timers are unref'd so gossip never keeps a process alive,
   * except with `keepAlive` (used while the caller awaits join() or a graceful stop()).
   */
  after(delayMs: number, fn: () => void, keepAlive?: boolean): Cancel;
  /** Run `fn` after I/O already received has been handled (setImmediate): see probe deadlines. */
  afterPendingIo(fn: () => void): Cancel;
}

export const realScheduler: Scheduler = {
  clock: systemClock,
  after(delayMs, fn, keepAlive = false) {
    const timer = setTimeout(fn, Math.max(0, delayMs));
    if (!keepAlive) timer.unref();
    return () => clearTimeout(timer);
  },
  afterPendingIo(fn) {
    const immediate = setImmediate(fn);
    immediate.unref();
    return () => clearImmediate(immediate);
  },
};

interface Task {
  readonly dueMs: number;
  readonly order: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * Deterministic scheduler over a ManualClock. `advance` runs due tasks in time order and
 * yields to the microtask queue between them so awaited promises make progress.
 */
export class ManualScheduler implements Scheduler {
  readonly clock: ManualClock;
  private tasks: Task[] = [];
  private order = 0;

  constructor(clock: ManualClock = new ManualClock()) {
    this.clock = clock;
  }

  after(delayMs: number, fn: () => void): Cancel {
    const task: Task = { dueMs: this.clock.now() + Math.max(0, delayMs), order: this.order++, fn, cancelled: false };
    this.tasks.push(task);
    return () => {
      task.cancelled = true;
    };
  }

  afterPendingIo(fn: () => void): Cancel {
    return this.after(0, fn);
  }

  get pendingTasks(): number {
    return this.tasks.filter((t) => !t.cancelled).length;
  }

  /** Advance simulated time by `ms`, running every task that falls due. Bounded by `maxTasks`. */
  async advance(ms: number, maxTasks = 10_000_000): Promise<void> {
    const end = this.clock.now() + ms;
    for (let ran = 0; ran < maxTasks; ran++) {
      await flushMicrotasks();
      const next = this.popDue(end);
      if (next === undefined) break;
      if (next.dueMs > this.clock.now()) this.clock.set(next.dueMs);
      next.fn();
    }
    await flushMicrotasks();
    if (end > this.clock.now()) this.clock.set(end);
  }

  private popDue(endMs: number): Task | undefined {
    this.tasks = this.tasks.filter((t) => !t.cancelled);
    let best: Task | undefined;
    let bestIndex = -1;
    this.tasks.forEach((t, i) => {
      if (t.dueMs > endMs) return;
      if (best === undefined || t.dueMs < best.dueMs || (t.dueMs === best.dueMs && t.order < best.order)) {
        best = t;
        bestIndex = i;
      }
    });
    if (bestIndex >= 0) this.tasks.splice(bestIndex, 1);
    return best;
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
