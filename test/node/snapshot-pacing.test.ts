import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { loadSnapshot, snapshotLimits, snapshotPath, writeSnapshot } from '../../src/node/state/snapshot.js';
import { Snapshotter, snapshotGapMs, snapshotPacing, type SnapshotTiming } from '../../src/node/state/snapshotter.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ringlimit-pacing-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const request = (key: string) => ({ key, action: 'upload', limit: 10, windowMs: 3_600_000 });

/** Timers run by hand: `fire()` runs the one armed (there is at most one) and waits for it. */
class ManualTiming implements SnapshotTiming {
  nowMs = 0;
  armed: { ms: number; run: () => Promise<void> } | undefined;
  /** How long each write "takes" on this clock. */
  writeCostMs = 0;
  now(): number {
    return this.nowMs;
  }
  after(ms: number, run: () => Promise<void>): () => void {
    const entry = { ms, run };
    this.armed = entry;
    return () => {
      if (this.armed === entry) this.armed = undefined;
    };
  }
  async fire(): Promise<void> {
    const entry = this.armed;
    if (entry === undefined) throw new Error('no check armed');
    this.armed = undefined;
    this.nowMs += entry.ms;
    const cost = this.writeCostMs;
    const realNow = this.now.bind(this);
    let calls = 0;
    // The write reads now() twice (start, end): the second read is writeCostMs later.
    this.now = () => realNow() + (calls++ === 0 ? 0 : cost);
    try {
      await entry.run();
    } finally {
      this.now = realNow;
    }
  }
}

describe('snapshot pacing: short gaps while writes are cheap, none while nothing changed', () => {
  it('the gap is 20 × the last write, at least 100 ms, at most the interval', () => {
    expect(snapshotPacing).toEqual({ minGapMs: 100, costFactor: 20 });
    expect(snapshotGapMs(0, 1_000)).toBe(100);
    expect(snapshotGapMs(2, 1_000)).toBe(100);
    expect(snapshotGapMs(10, 1_000)).toBe(200);
    expect(snapshotGapMs(80, 1_000)).toBe(1_000);
    expect(snapshotGapMs(0, 50)).toBe(50);
  });

  it('writes only when a key changed or the members did; an idle store is not rewritten', async () => {
    const dataDir = freshDir();
    const clock = new ManualClock(1_000_000);
    const store = new LimiterStore(clock, {});
    let members = ['a', 'b'];
    const timing = new ManualTiming();
    const errors: Error[] = [];
    const s = new Snapshotter({ store, clock, members: () => members }, { dataDir, nodeId: 'a', intervalMs: 1_000, slotsPerTurn: 64 }, (e) => errors.push(e), timing);
    s.start();
    expect(timing.armed?.ms).toBe(100);

    await timing.fire(); // members differ from none recorded: written
    expect(s.stats.written).toBe(1);
    await timing.fire(); // nothing changed
    await timing.fire();
    expect(s.stats.written).toBe(1);
    expect(s.pacing.skipped).toBe(2);

    store.allow(request('alice'));
    await timing.fire();
    expect(s.stats.written).toBe(2);

    members = ['a', 'b', 'c'];
    await timing.fire();
    expect(s.stats.written).toBe(3);
    members = []; // none seen (e.g. between roles): the last list is kept, nothing to write
    await timing.fire();
    expect(s.stats.written).toBe(3);

    const back = new LimiterStore(clock, {});
    const loaded = await loadSnapshot(dataDir, 'a', back, clock, 'refuse');
    expect(loaded.loaded).toBe(1);
    expect(loaded.members).toEqual(['a', 'b', 'c']);
    await s.close(false);
    expect(errors).toEqual([]);
  });

  it('a slow write stretches the gap to 20 × its time, capped at the interval', async () => {
    const dataDir = freshDir();
    const clock = new ManualClock(1_000_000);
    const store = new LimiterStore(clock, {});
    const timing = new ManualTiming();
    const s = new Snapshotter({ store, clock }, { dataDir, nodeId: 'a', intervalMs: 1_000, slotsPerTurn: 64 }, () => undefined, timing);
    s.start();
    timing.writeCostMs = 15;
    store.allow(request('alice'));
    await timing.fire();
    expect(s.pacing.lastWriteMs).toBe(15);
    expect(timing.armed?.ms).toBe(300);
    timing.writeCostMs = 400;
    store.allow(request('alice'));
    await timing.fire();
    expect(timing.armed?.ms).toBe(1_000);
    await s.close(false);
  });

  it('a failing write is retried a whole interval later and reported once', async () => {
    const dataDir = join(freshDir(), 'missing', 'deeper');
    const clock = new ManualClock(1_000_000);
    const store = new LimiterStore(clock, {});
    const timing = new ManualTiming();
    const errors: Error[] = [];
    const s = new Snapshotter({ store, clock }, { dataDir, nodeId: 'a', intervalMs: 1_000, slotsPerTurn: 64 }, (e) => errors.push(e), timing);
    s.start();
    store.allow(request('alice'));
    await timing.fire();
    expect(errors).toHaveLength(1);
    expect(s.stats.failed).toBe(1);
    expect(timing.armed?.ms).toBe(1_000);
    await s.close(false);
  });

  it('the members list is checked before the disk is touched; an old header without one loads with none', async () => {
    const dataDir = freshDir();
    const clock = new ManualClock(1_000_000);
    const store = new LimiterStore(clock, {});
    const tooMany = Array.from({ length: snapshotLimits.maxMembers + 1 }, (_, i) => `n${i}`);
    await expect(writeSnapshot(dataDir, 'a', store, clock, 64, tooMany)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(writeSnapshot(dataDir, 'a', store, clock, 64, [''])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });

    // A file as written before members were recorded: header [nodeId], no chunks.
    const magic = Buffer.from([0x52, 0x4c, 0x53, 0x4e, 0x41, 0x50, 0, 2]);
    const header = encodeMsgpack(['a']);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(header.length);
    const end = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const body = Buffer.concat([magic, length, header, end]);
    writeFileSync(snapshotPath(dataDir, 'a'), Buffer.concat([body, createHash('sha256').update(body).digest()]));
    const loaded = await loadSnapshot(dataDir, 'a', store, clock, 'refuse');
    expect(loaded).toEqual({ loaded: 0, members: [] });
  });
});
