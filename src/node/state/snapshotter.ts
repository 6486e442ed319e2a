import type { Clock } from '../../common/clock.js';
import type { LimiterStore } from '../../limiter/store.js';
import { checkDataDir, loadSnapshot, writeSnapshot, type CorruptSnapshotPolicy, type LoadResult } from './snapshot.js';

export interface SnapshotterComponents {
  store: LimiterStore;
  clock: Clock;
}

export interface SnapshotterInit {
  dataDir: string;
  nodeId: string;
  /** A snapshot every this many ms while running; 0: only the final one at graceful stop. */
  intervalMs: number;
  /** Store slots read per chunk: each chunk is written before the next is read, so the event loop keeps turning. */
  slotsPerTurn: number;
}

export interface SnapshotStats {
  written: number;
  failed: number;
  /** Keys in the last snapshot written. */
  lastKeys: number;
  /** Wall-clock time the last snapshot was committed (0: none yet). */
  lastWrittenAtMs: number;
  /** Why the last failed write failed ('' when none has). */
  lastError: string;
}

/**
 * Periodic crash-safe snapshots of one node's store: one write at a time, the next one
 * intervalMs after the previous ended, so a kill -9 loses at most what was admitted in
 * about one interval (plus the write itself). close(true) writes the final one.
 */
export class Snapshotter {
  readonly stats: SnapshotStats = { written: 0, failed: 0, lastKeys: 0, lastWrittenAtMs: 0, lastError: '' };
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly components: SnapshotterComponents,
    private readonly init: SnapshotterInit,
    private readonly onError: (error: Error) => void,
  ) {}

  start(): void {
    this.schedule();
  }

  /** Stops the periodic writes, waits for one in progress, then (final) writes the last snapshot; throws if that fails. */
  async close(final: boolean): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.writing;
    if (final) await this.writeOnce();
  }

  private schedule(): void {
    if (this.closed || this.init.intervalMs === 0) return;
    this.timer = setTimeout(() => {
      this.writing = this.writeOnce().then(
        () => undefined,
        (error: unknown) => this.onError(error instanceof Error ? error : new Error(String(error))),
      );
      void this.writing.then(() => {
        this.writing = undefined;
        this.schedule();
      });
    }, this.init.intervalMs);
    this.timer.unref();
  }

  private async writeOnce(): Promise<void> {
    const { store, clock } = this.components;
    try {
      this.stats.lastKeys = await writeSnapshot(this.init.dataDir, this.init.nodeId, store, clock, this.init.slotsPerTurn);
      this.stats.written++;
      this.stats.lastWrittenAtMs = Date.now();
    } catch (error) {
      this.stats.failed++;
      this.stats.lastError = error instanceof Error ? error.message : String(error);
      throw error;
    }
  }
}

/** Store slots a snapshot reads per chunk (each chunk is written before the next is read). */
const SNAPSHOT_SLOTS_PER_TURN = 20_000;

export interface RestoreInit {
  dataDir: string;
  nodeId: string;
  snapshotIntervalMs: number;
  onCorruptSnapshot: CorruptSnapshotPolicy;
}

/**
 * A node with a data directory: checks it, loads the node's last snapshot into `store`, and
 * snapshots it from now on. What was loaded (or set aside) is returned with the snapshotter.
 */
export async function restoreAndSnapshot(components: SnapshotterComponents, init: RestoreInit, onError: (error: Error) => void): Promise<{ snapshotter: Snapshotter; loaded: LoadResult }> {
  await checkDataDir(init.dataDir);
  const loaded = await loadSnapshot(init.dataDir, init.nodeId, components.store, components.clock, init.onCorruptSnapshot);
  const snapshotter = new Snapshotter(components, { dataDir: init.dataDir, nodeId: init.nodeId, intervalMs: init.snapshotIntervalMs, slotsPerTurn: SNAPSHOT_SLOTS_PER_TURN }, onError);
  snapshotter.start();
  return { snapshotter, loaded };
}
