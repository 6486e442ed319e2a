import { getHeapStatistics } from 'node:v8';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** The fixed parts of the idle-time collection (not options: they only decide when an idle node tidies up). */
export const idleGcDefaults = {
  /** How often the node looks at its heap and its event loop. */
  checkIntervalMs: 5_000,
  /** The event loop was busy less than this share of the last interval: the node is idle. */
  idleUtilization: 0.05,
  /** Heap in use grown by at least this much since the last collection seen: worth collecting. */
  minGarbageBytes: 24 * 1024 * 1024,
} as const;

export interface IdleGcStats {
  /** Collections run because the node went idle holding garbage. */
  collections: number;
  /** Heap in use after the last of them, in bytes. */
  lastHeapAfterBytes: number;
}

type GcFunction = () => void;

/** What IdleGc reads and calls: the process's by default, fakes in tests. */
export interface IdleGcComponents {
  /** A full collection; undefined (no --expose-gc): IdleGc does nothing. */
  gc: GcFunction | undefined;
  heapUsedBytes(): number;
  /** The event loop's busy share since the last call, 0–1. */
  loopUtilization(): number;
}

function processComponents(): IdleGcComponents {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return {
    gc: exposedGc(),
    heapUsedBytes: () => getHeapStatistics().used_heap_size,
    loopUtilization: () => {
      const now = performance.eventLoopUtilization();
      const share = performance.eventLoopUtilization(now, last).utilization;
      last = now;
      return share;
    },
  };
}

/**
 * A full collection when the node has gone idle holding garbage. V8 collects only when
 * something allocates, so a node that falls quiet after a burst (an attack, a bulk load)
 * keeps that burst's garbage — and the RSS it takes — for minutes (docs/security.md, "RSS
 * after the attack set"). Needs the `gc` function, which only `--expose-gc` on the command
 * line (or in NODE_OPTIONS) provides, as the container image and the systemd unit set it;
 * without it this does nothing. One timer (unref'd); never runs on a busy event loop.
 */
export class IdleGc {
  readonly stats: IdleGcStats = { collections: 0, lastHeapAfterBytes: 0 };
  private readonly timer: NodeJS.Timeout | undefined;
  private heapAfterBytes: number;

  constructor(private readonly components: IdleGcComponents = processComponents()) {
    this.heapAfterBytes = components.heapUsedBytes();
    if (components.gc === undefined) return;
    this.timer = setInterval(() => this.check(), idleGcDefaults.checkIntervalMs);
    this.timer.unref();
  }

  /** Whether this process can collect (the `gc` function is exposed). */
  get enabled(): boolean {
    return this.components.gc !== undefined;
  }

  /** One look: collects when the last interval was idle and the heap grew by minGarbageBytes since the last collection seen. */
  check(): void {
    const { gc, heapUsedBytes, loopUtilization } = this.components;
    if (gc === undefined) return;
    const busy = loopUtilization();
    const used = heapUsedBytes();
    // V8 collected by itself since (the heap shrank): count from there.
    if (used < this.heapAfterBytes) this.heapAfterBytes = used;
    if (busy >= idleGcDefaults.idleUtilization || used - this.heapAfterBytes < idleGcDefaults.minGarbageBytes) return;
    gc();
    this.heapAfterBytes = heapUsedBytes();
    this.stats.collections++;
    this.stats.lastHeapAfterBytes = this.heapAfterBytes;
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}

function exposedGc(): GcFunction | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? (gc as GcFunction) : undefined;
}
