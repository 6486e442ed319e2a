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

function earlier(a: Task, b: Task): boolean {
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.order < b.order);
}

/** Binary min-heap of tasks by (due time, insertion order). */
class TaskHeap {
  private readonly items: Task[] = [];

  get size(): number {
    return this.items.length;
  }

  push(task: Task): void {
    const items = this.items;
    items.push(task);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(items[i] as Task, items[parent] as Task)) break;
      [items[i], items[parent]] = [items[parent] as Task, items[i] as Task];
      i = parent;
    }
  }

  peek(): Task | undefined {
    return this.items[0];
  }

  pop(): Task | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < items.length && earlier(items[l] as Task, items[best] as Task)) best = l;
      if (r < items.length && earlier(items[r] as Task, items[best] as Task)) best = r;
      if (best === i) return top;
      [items[i], items[best]] = [items[best] as Task, items[i] as Task];
      i = best;
    }
  }

  countLive(): number {
    return this.items.filter((t) => !t.cancelled).length;
  }
}

/**
 * Deterministic scheduler over a ManualClock. `advance` runs due tasks in time order and
 * yields to the microtask queue between them so awaited promises make progress.
 */
export class ManualScheduler implements Scheduler {
  readonly clock: ManualClock;
  private readonly tasks = new TaskHeap();
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
    return this.tasks.countLive();
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
    for (;;) {
      const top = this.tasks.peek();
      if (top === undefined || top.dueMs > endMs) return undefined;
      this.tasks.pop();
      if (!top.cancelled) return top;
    }
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
