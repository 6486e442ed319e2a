import type { Clock } from '../common/clock.js';
import { RateLimitError } from '../common/errors.js';

interface Waiter<T> {
  dueMs: number;
  value: T;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
  settled: boolean;
}

/**
 * Callers waiting for a reserved slot, released in due order by one shared timer
 * (a binary min-heap keyed by due time; never a timer per key or per caller).
 */
export class WaitQueue<T> {
  private readonly heap: Waiter<T>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs = Infinity;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    /** Bound on callers waiting at once. */
    private readonly maxWaiting: number,
  ) {}

  get waiting(): number {
    return this.heap.length;
  }

  hasRoom(): boolean {
    return !this.closed && this.heap.length < this.maxWaiting;
  }

  /** Resolves with `value` once the clock reaches dueMs. */
  wait(dueMs: number, value: T, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = { dueMs, value, resolve, reject, settled: false };
      if (signal !== undefined) {
        if (signal.aborted) {
          reject(new RateLimitError('ABORTED', 'acquire was aborted before its slot came; the reserved capacity stays used'));
          return;
        }
        signal.addEventListener(
          'abort',
          () => {
            if (waiter.settled) return;
            waiter.settled = true; // left in the heap; skipped when it surfaces
            reject(new RateLimitError('ABORTED', 'acquire was aborted before its slot came; the reserved capacity stays used'));
          },
          { once: true },
        );
      }
      this.push(waiter);
      this.arm();
    });
  }

  /** Releases every waiter that is due. Called by the timer; tests may call it after moving a manual clock. */
  flush(): void {
    const nowMs = this.clock.now();
    while (this.heap.length > 0 && this.heap[0]!.dueMs <= nowMs) {
      const waiter = this.pop();
      if (!waiter.settled) {
        waiter.settled = true;
        waiter.resolve(waiter.value);
      }
    }
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of this.heap) {
      if (!waiter.settled) {
        waiter.settled = true;
        waiter.reject(new RateLimitError('UNAVAILABLE', 'the limiter was closed while this caller waited'));
      }
    }
    this.heap.length = 0;
  }

  private arm(): void {
    const first = this.heap[0];
    if (first === undefined || this.closed) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerDueMs = Infinity;
      return;
    }
    if (this.timer !== undefined && this.timerDueMs <= first.dueMs) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDueMs = first.dueMs;
    const delayMs = Math.max(0, Math.ceil(first.dueMs - this.clock.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueMs = Infinity;
      this.flush();
    }, delayMs);
  }

  private push(waiter: Waiter<T>): void {
    const heap = this.heap;
    heap.push(waiter);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.dueMs <= waiter.dueMs) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = waiter;
  }

  private pop(): Waiter<T> {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right]!.dueMs < heap[left]!.dueMs ? right : left;
        if (heap[child]!.dueMs >= last.dueMs) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}
