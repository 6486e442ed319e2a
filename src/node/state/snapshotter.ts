import { performance } from 'node:perf_hooks';
import type { Clock } from '../../common/clock.js';
import type { LimiterStore } from '../../limiter/store.js';
import { checkDataDir, loadSnapshot, writeSnapshot, type CorruptSnapshotPolicy, type LoadedSnapshot } from './snapshot.js';

export interface SnapshotterComponents {
  store: LimiterStore;
  clock: Clock;
  /**
   * The node ids of the cluster's owners as this node sees them now, recorded in each
   * snapshot (read at every check and write; at most snapshotLimits.maxMembers ids of 1 to
   * maxMemberIdChars characters). An empty list means "none seen yet": the last list
   * recorded (or loaded) is kept. Unset: no members are recorded.
   */
  members?: () => string[];
}

export interface SnapshotterInit {
  dataDir: string;
  nodeId: string;
  /**
   * The longest gap between two snapshots while keys change (cheap snapshots are written
   * more often, see snapshotPacing); 0: only the final one at graceful stop.
   */
  intervalMs: number;
  /** Store slots read per chunk: each chunk is written before the next is read, so the event loop keeps turning. */
  slotsPerTurn: number;
}

/**
 * How often snapshots are written while keys change: internal bounds, not options. After a
 * write that took d ms the next one waits max(minGapMs, costFactor × d) from its end, but
 * never more than the configured interval: writes take at most 1 / (1 + costFactor) of the
 * time (under 5 %) unless the interval itself asks for more.
 */
export const snapshotPacing = {
  minGapMs: 100,
  costFactor: 20,
} as const;

/** The gap after a write that took `lastWriteMs`: costFactor times it, at least minGapMs, at most `maxGapMs` (the interval). */
export function snapshotGapMs(lastWriteMs: number, maxGapMs: number): number {
  return Math.min(maxGapMs, Math.max(snapshotPacing.minGapMs, snapshotPacing.costFactor * lastWriteMs));
}

/** Time and timers: real ones by default, a seam for tests. */
export interface SnapshotTiming {
  /** Monotonic milliseconds: how long a write took. */
  now(): number;
  /** Runs `run` in `ms` (a timer that does not hold the process open); the function returned cancels it. */
  after(ms: number, run: () => Promise<void>): () => void;
}

export const realSnapshotTiming: SnapshotTiming = {
  now: () => performance.now(),
  after: (ms, run) => {
    const timer = setTimeout(() => void run(), ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

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

export interface SnapshotPacingStats {
  /** Checks that found no key's state and no member changed since the last write: nothing written. */
  skipped: number;
  /** How long the last successful write took, ms (0: none yet). */
  lastWriteMs: number;
  /** The wait now between the end of a write and the next check, ms (see snapshotGapMs). */
  gapMs: number;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Crash-safe snapshots of one node's store, one write at a time. A check runs a gap after
 * the last write ended (snapshotGapMs: short when writes are cheap, the interval at most)
 * and writes only if a key's state (store.mutations) or the members changed since the
 * last write began, so a kill -9 loses at most what was admitted in about one gap plus the
 * write itself, and an idle store is not rewritten. close(true) writes the final one.
 */
export class Snapshotter {
  readonly stats: SnapshotStats = { written: 0, failed: 0, lastKeys: 0, lastWrittenAtMs: 0, lastError: '' };
  readonly pacing: SnapshotPacingStats;
  private cancelTimer: (() => void) | undefined;
  private checking: Promise<void> | undefined;
  private closed = false;
  /** store.mutations when the last successful write began (at start: the store as loaded, which is what is on disk). */
  private writtenMutations = 0;
  /** The members in the last snapshot written (at start: those loaded). */
  private writtenMembers: readonly string[] = [];

  constructor(
    private readonly components: SnapshotterComponents,
    private readonly init: SnapshotterInit,
    private readonly onError: (error: Error) => void,
    private readonly timing: SnapshotTiming = realSnapshotTiming,
  ) {
    this.pacing = { skipped: 0, lastWriteMs: 0, gapMs: snapshotGapMs(0, init.intervalMs) };
  }

  /** Starts the checks; the store as it is now and `loadedMembers` are taken as what the file on disk holds. */
  start(loadedMembers: readonly string[] = []): void {
    this.writtenMutations = this.components.store.mutations;
    this.writtenMembers = [...loadedMembers];
    this.arm(this.pacing.gapMs);
  }

  /** Stops the periodic writes, waits for one in progress, then (final) writes the last snapshot; throws if that fails. */
  async close(final: boolean): Promise<void> {
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    await this.checking;
    if (final) await this.writeOnce(this.membersNow());
  }

  private arm(ms: number): void {
    if (this.closed || this.init.intervalMs === 0) return;
    this.cancelTimer = this.timing.after(ms, () => (this.checking = this.check()));
  }

  /** Writes if anything changed since the last write, then arms the next check. Never rejects. */
  private async check(): Promise<void> {
    this.cancelTimer = undefined;
    if (this.closed) return;
    const members = this.membersNow();
    if (this.components.store.mutations === this.writtenMutations && sameList(members, this.writtenMembers)) {
      this.pacing.skipped++;
      this.arm(this.pacing.gapMs);
      return;
    }
    try {
      await this.writeOnce(members);
      this.arm(this.pacing.gapMs);
    } catch (error) {
      // A failing disk is retried a full interval later: one warning per interval, not per gap.
      this.arm(this.init.intervalMs);
      try {
        this.onError(error instanceof Error ? error : new Error(String(error)));
      } catch {
        // a listener's failure is not the snapshotter's
      }
    }
  }

  /** The members to record: the source's list, or the last one recorded while it has none. */
  private membersNow(): readonly string[] {
    const members = this.components.members?.();
    return members === undefined || members.length === 0 ? this.writtenMembers : members;
  }

  private async writeOnce(members: readonly string[]): Promise<void> {
    const { store, clock } = this.components;
    // Read before the store is: a change made while the write runs makes the next check write again.
    const mutations = store.mutations;
    const recorded = [...members];
    const started = this.timing.now();
    try {
      this.stats.lastKeys = await writeSnapshot(this.init.dataDir, this.init.nodeId, store, clock, this.init.slotsPerTurn, recorded);
    } catch (error) {
      this.stats.failed++;
      this.stats.lastError = error instanceof Error ? error.message : String(error);
      throw error;
    }
    this.pacing.lastWriteMs = Math.max(0, this.timing.now() - started);
    this.pacing.gapMs = snapshotGapMs(this.pacing.lastWriteMs, this.init.intervalMs);
    this.stats.written++;
    this.stats.lastWrittenAtMs = Date.now();
    this.writtenMutations = mutations;
    this.writtenMembers = recorded;
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
export async function restoreAndSnapshot(components: SnapshotterComponents, init: RestoreInit, onError: (error: Error) => void): Promise<{ snapshotter: Snapshotter; loaded: LoadedSnapshot }> {
  await checkDataDir(init.dataDir);
  const loaded = await loadSnapshot(init.dataDir, init.nodeId, components.store, components.clock, init.onCorruptSnapshot);
  const snapshotter = new Snapshotter(components, { dataDir: init.dataDir, nodeId: init.nodeId, intervalMs: init.snapshotIntervalMs, slotsPerTurn: SNAPSHOT_SLOTS_PER_TURN }, onError);
  snapshotter.start(loaded.members);
  return { snapshotter, loaded };
}
