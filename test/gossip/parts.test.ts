import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { Awareness } from '../../src/gossip/awareness.js';
import { BroadcastQueue } from '../../src/gossip/broadcast-queue.js';
import { CandidateArea, PINGS_PER_CANDIDATE } from '../../src/gossip/candidates.js';
import { defaults, resolveLimits, resolveTimings } from '../../src/gossip/defaults.js';
import { MemberTable } from '../../src/gossip/member-table.js';
import { MemoryNetwork } from '../../src/gossip/memory-network.js';
import { SwimMembership } from '../../src/gossip/swim.js';
import type { Update } from '../../src/gossip/messages.js';
import { checkedMeta } from '../../src/gossip/meta.js';
import { ManualScheduler } from '../../src/gossip/scheduler.js';
import { StaticMembership } from '../../src/gossip/static-membership.js';
import { Suspicion } from '../../src/gossip/suspicion.js';
import { pushPullIntervalMs, retransmitLimit, suspicionBoundsMs, suspicionTimeoutMs } from '../../src/gossip/scaling.js';

describe('Lifeguard suspicion timer', () => {
  it('shrinks from max to min as confirmations arrive, logarithmically', () => {
    expect(suspicionTimeoutMs(0, 2, 400, 1200)).toBe(1200);
    expect(suspicionTimeoutMs(1, 2, 400, 1200)).toBe(695);
    expect(suspicionTimeoutMs(2, 2, 400, 1200)).toBe(400);
    expect(suspicionTimeoutMs(5, 2, 400, 1200)).toBe(400);
    expect(suspicionTimeoutMs(0, 0, 400, 1200)).toBe(400);
  });

  it('scales bounds with log10 of the cluster size', () => {
    expect(suspicionBoundsMs(5, 400, 3)).toEqual({ minMs: 400, maxMs: 1200 });
    expect(suspicionBoundsMs(100, 400, 3)).toEqual({ minMs: 800, maxMs: 2400 });
    expect(suspicionBoundsMs(1000, 400, 3)).toEqual({ minMs: 1200, maxMs: 3600 });
  });
});

describe('scaling with the member count', () => {
  it('retransmits each update multiplier × ceil(log10(n + 1)) times', () => {
    expect([1, 9, 10, 99, 100, 999, 1000, 4096].map((n) => retransmitLimit(n, 4))).toEqual([4, 4, 8, 8, 12, 12, 16, 16]);
  });

  it('spaces push-pull out by one base interval per doubling past 32 members, as memberlist', () => {
    expect([1, 32, 33, 64, 65, 1000, 4096].map((n) => pushPullIntervalMs(2_000, n))).toEqual([2_000, 2_000, 4_000, 4_000, 6_000, 12_000, 16_000]);
  });

  it('never restarts: confirmations only bring the deadline closer; duplicates and the accuser do not count', async () => {
    const scheduler = new ManualScheduler(new ManualClock(0));
    let firedAt = -1;
    const s = new Suspicion(scheduler, 'a', 2, 400, 1200, () => {
      firedAt = scheduler.clock.now();
    });
    await scheduler.advance(300);
    expect(s.confirm('a')).toBe(false);
    expect(s.confirm('b')).toBe(true);
    expect(s.confirm('b')).toBe(false);
    await scheduler.advance(300);
    expect(firedAt).toBe(-1);
    await scheduler.advance(100);
    expect(firedAt).toBe(695);
  });
});

describe('broadcast queue', () => {
  const alive = (id: string, inc: number): Update => ({ kind: 'alive', nodeId: id, generation: 1, incarnation: inc, address: '127.0.0.1:1', meta: {} });

  it('sends each update at most `limit` times, newest news per node only, within the byte budget', () => {
    const q = new BroadcastQueue(10);
    q.enqueue(alive('a', 1), 30);
    q.enqueue(alive('a', 2), 30);
    q.enqueue(alive('b', 1), 30);
    expect(q.take(100, 2).map((u) => `${u.nodeId}${u.incarnation}`).sort()).toEqual(['a2', 'b1']);
    expect(q.take(40, 2)).toHaveLength(1);
    expect(q.take(100, 2)).toHaveLength(1);
    expect(q.size).toBe(0);
  });

  it('is bounded: evicts the most transmitted entry when full', () => {
    const q = new BroadcastQueue(2);
    q.enqueue(alive('a', 1), 10);
    q.take(10, 5);
    q.enqueue(alive('b', 1), 10);
    q.enqueue(alive('c', 1), 10);
    expect(q.size).toBe(2);
    expect(q.evicted).toBe(1);
    expect(q.take(100, 5).map((u) => u.nodeId).sort()).toEqual(['b', 'c']);
  });
});

describe('awareness', () => {
  it('saturates in [0, max-1] and scales timeouts by score + 1', () => {
    const a = new Awareness(8);
    a.apply(-3);
    expect(a.scale(100)).toBe(100);
    a.apply(20);
    expect(a.score).toBe(7);
    expect(a.scale(100)).toBe(800);
  });
});

describe('member table merge rules', () => {
  const alive = (inc: number, gen = 1, meta = {}): Update & { kind: 'alive' } => ({
    kind: 'alive',
    nodeId: 'x',
    generation: gen,
    incarnation: inc,
    address: '127.0.0.1:1',
    meta,
  });

  it('accepts only strictly newer alive, treats a new generation as a restart (join)', () => {
    const t = new MemberTable(10);
    expect(t.applyAlive(alive(0), 0)?.event).toBe('join');
    expect(t.applyAlive(alive(0), 0)).toBeUndefined();
    expect(t.applyAlive(alive(1, 1, { v: '2' }), 0)?.event).toBe('update');
    expect(t.applyAlive(alive(0, 2), 0)?.event).toBe('join');
  });

  it('ignores accusations of other generations or older incarnations; dead is final until a newer alive', () => {
    const t = new MemberTable(10);
    t.applyAlive(alive(3, 5), 0);
    expect(t.applySuspect({ kind: 'suspect', nodeId: 'x', generation: 4, incarnation: 9, from: 'a' }, 0)).toBeUndefined();
    expect(t.applySuspect({ kind: 'suspect', nodeId: 'x', generation: 5, incarnation: 2, from: 'a' }, 0)).toBeUndefined();
    expect(t.applySuspect({ kind: 'suspect', nodeId: 'x', generation: 5, incarnation: 3, from: 'a' }, 0)?.kind).toBe('suspected');
    expect(t.applySuspect({ kind: 'suspect', nodeId: 'x', generation: 5, incarnation: 3, from: 'b' }, 0)?.kind).toBe('confirmation');
    expect(t.applyDead({ kind: 'dead', nodeId: 'x', generation: 5, incarnation: 3, from: 'a' }, 0)?.event).toBe('fail');
    expect(t.applyAlive(alive(3, 5), 0)).toBeUndefined();
    expect(t.applyAlive(alive(4, 5), 0)?.event).toBe('join');
  });

  it('is bounded by maxMembers and forgets tombstones after retention', () => {
    const t = new MemberTable(1);
    t.applyAlive(alive(0), 0);
    expect(t.applyAlive({ ...alive(0), nodeId: 'y' }, 0)).toBeUndefined();
    expect(t.rejectedFull).toBe(1);
    t.applyLeft({ kind: 'left', nodeId: 'x', generation: 1, incarnation: 1 }, 100);
    expect(t.prune(150, 100)).toBe(0);
    expect(t.prune(200, 100)).toBe(1);
  });
});

describe('options and metadata validation', () => {
  it('names the offending option', () => {
    expect(() => resolveTimings('lan', { probeTimeoutMs: 500 })).toThrow(/timings.probeTimeoutMs: must be below probeIntervalMs/);
    expect(() => resolveTimings('wan' as 'lan', {})).toThrow(/preset: must be one of lan, test/);
    expect(() => resolveTimings('lan', { probeIntervalMs: -1 })).toThrow(/timings.probeIntervalMs/);
    expect(() => resolveLimits({ maxPacketBytes: 100 })).toThrow(/limits.maxPacketBytes/);
  });

  it('rejects oversized metadata with a clear error instead of dropping it', () => {
    expect(() => checkedMeta({ big: 'x'.repeat(600) }, defaults.limits)).toThrow(/meta: is 603 bytes, over the 512-byte limit/);
    expect(() => checkedMeta({ 'bad key': 'v' }, defaults.limits)).toThrow(/meta: key/);
    expect(() => checkedMeta({ n: 1 } as unknown as Record<string, string>, defaults.limits)).toThrow(/must be a string/);
  });
});

describe('StaticMembership', () => {
  it('lists a fixed, always-alive cluster and updates its own metadata', async () => {
    const m = new StaticMembership({
      self: { nodeId: 'b', address: '127.0.0.1:7001', meta: { state: 'active' } },
      peers: [{ nodeId: 'a', address: '127.0.0.1:7000' }],
    });
    await m.start();
    expect(m.members().map((x) => x.nodeId)).toEqual(['a', 'b']);
    m.updateMeta({ state: 'draining' });
    expect(m.self.meta).toEqual({ state: 'draining' });
    expect(m.self.incarnation).toBe(1);
    expect(() => m.updateMeta({ big: 'x'.repeat(600) })).toThrow(/INVALID_ARGUMENT|512-byte/);
    await m.stop();
  });

  it('rejects duplicate ids and bad addresses', () => {
    expect(() => new StaticMembership({ self: { nodeId: 'a', address: '127.0.0.1:1' }, peers: [{ nodeId: 'a', address: '127.0.0.1:2' }] })).toThrow(
      /duplicate/,
    );
    expect(() => new StaticMembership({ self: { nodeId: 'a', address: 'localhost:1' } })).toThrow(/self.address/);
  });
});

describe('SwimMembership lifecycle', () => {
  it('stop() is idempotent, and metadata cannot change after a leave', async () => {
    const scheduler = new ManualScheduler();
    const network = new MemoryNetwork({ scheduler });
    const m = new SwimMembership({ transport: network.bind(), scheduler, preset: 'test', nodeId: 'solo' });
    await m.start();
    const first = m.stop();
    const second = m.stop();
    expect(second).toBe(first);
    await scheduler.advance(1_000);
    await first;
    expect(() => m.updateMeta({ a: 'b' })).toThrow(/after stop/);
    await expect(m.start()).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });

  it('validates construction options with the field name', async () => {
    const scheduler = new ManualScheduler();
    const network = new MemoryNetwork({ scheduler });
    expect(() => new SwimMembership({ transport: network.bind(), scheduler, nodeId: 'has space' })).toThrow(/nodeId/);
    expect(() => new SwimMembership({ transport: network.bind(), scheduler, advertiseAddress: '0.0.0.0:7000' })).toThrow(/advertiseAddress/);
    expect(() => new SwimMembership({ transport: network.bind(), scheduler, meta: { k: 'x'.repeat(1000) } })).toThrow(/512-byte limit/);
  });
});

describe('MemberTable under a flood of invented members (issue 28, finding 8)', () => {
  const fake = (i: number): Update => ({ kind: 'alive', nodeId: `fake-${i}`, generation: 1, incarnation: 0, address: `127.0.0.1:${1000 + i}`, meta: {} });
  const real = (id: string, port: number): Update => ({ kind: 'alive', nodeId: id, generation: 1, incarnation: 0, address: `127.0.0.1:${port}`, meta: {} });

  it('a source that is not a proven member teaches at most maxUnprovenPerSource members', () => {
    const t = new MemberTable(100, 8);
    for (let i = 0; i < 50; i++) t.applyAlive(fake(i) as Extract<Update, { kind: 'alive' }>, 0, 'evil');
    expect(t.all()).toHaveLength(8);
    expect(t.rejectedSource).toBe(42);
    // A proven member's news is not capped.
    t.applyAlive(real('m', 7000) as Extract<Update, { kind: 'alive' }>, 0, '127.0.0.1:7000');
    t.markProven('m');
    for (let i = 100; i < 120; i++) t.applyAlive(fake(i) as Extract<Update, { kind: 'alive' }>, 0, '127.0.0.1:7000');
    expect(t.all()).toHaveLength(29);
  });

  it('when full, a newcomer displaces an unproven member of the source that taught most, never a proven one', () => {
    const t = new MemberTable(10);
    t.applyAlive(real('m', 7000) as Extract<Update, { kind: 'alive' }>, 0, 'seed');
    t.markProven('m');
    for (let i = 0; i < 20; i++) t.applyAlive(fake(i) as Extract<Update, { kind: 'alive' }>, 0, 'evil');
    expect(t.all()).toHaveLength(10);
    expect(t.rejectedFull).toBe(11); // the flood cannot displace its own
    const applied = t.applyAlive(real('newcomer', 7001) as Extract<Update, { kind: 'alive' }>, 0, '127.0.0.1:7001');
    expect(applied?.event).toBe('join');
    expect(applied?.evicted?.nodeId).toBe('fake-0');
    expect(t.get('m')).toBeDefined();
    expect(t.evictedUnproven).toBe(1);
  });
});

describe('CandidateArea: new members held apart without a cluster key (issue 28, finding 8)', () => {
  type Alive = Extract<Update, { kind: 'alive' }>;
  const told = (i: number, port = 1000 + i): Alive => ({ kind: 'alive', nodeId: `told-${i}`, generation: 1, incarnation: 0, address: `127.0.0.1:${port}`, meta: {} });
  const own = (id: string, port: number): Alive => ({ kind: 'alive', nodeId: id, generation: 1, incarnation: 0, address: `127.0.0.1:${port}`, meta: {} });

  it('one source tells of at most maxPerSource; when full, what another told of is refused', () => {
    const area = new CandidateArea({ max: 20, maxPerSource: 8, ttlMs: 10_000 });
    for (let i = 0; i < 50; i++) area.offer(told(i), 'evil-1', false, 0);
    expect(area.size).toBe(8);
    expect(area.refusedSource).toBe(42);
    for (let s = 2; s <= 5; s++) for (let i = 0; i < 8; i++) area.offer(told(100 * s + i), `evil-${s}`, false, 0);
    expect(area.size).toBe(20);
    expect(area.refusedFull).toBe(20); // 32 told of by four more sources, room for 12
    expect(area.displaced).toBe(0);
  });

  it('when full, a newcomer introducing itself takes the place of the oldest candidate of the source holding most; a source cannot displace its own', () => {
    const area = new CandidateArea({ max: 10, maxPerSource: 64, ttlMs: 10_000 });
    for (let i = 0; i < 8; i++) area.offer(told(i), 'evil', false, i);
    area.offer(told(8), 'other', false, 8);
    area.offer(told(9), 'other', false, 9);
    const newcomer = area.offer(own('o4', 7004), '127.0.0.1:7004', true, 10);
    expect(newcomer?.spoke).toBe(true);
    expect(area.get('o4')).toBe(newcomer);
    expect(area.get('told-0')).toBeUndefined(); // evil's oldest
    expect(area.displaced).toBe(1);
    // Self-introductions from one source: each takes the place of the largest source's oldest
    // only while that source holds more than this one.
    let fromOne = 0;
    for (let i = 0; i < 20; i++) if (area.offer(own(`intro-${i}`, 9000), '127.0.0.1:9000', true, 20 + i) !== undefined) fromOne++;
    expect(area.size).toBe(10);
    expect(fromOne).toBeLessThan(10);
    expect(area.get('o4')).toBeDefined(); // the real newcomer's source holds one: never the largest
  });

  it('what a member says of itself outranks what others said of it; what others say later does not move it', () => {
    const area = new CandidateArea({ max: 10, maxPerSource: 8, ttlMs: 10_000 });
    area.offer({ ...own('x', 6666), incarnation: 5 }, 'evil', false, 0);
    const held = area.offer(own('x', 7000), '127.0.0.1:7000', true, 1);
    expect(held?.record.address).toBe('127.0.0.1:7000');
    expect(held?.spoke).toBe(true);
    area.offer({ ...own('x', 6666), incarnation: 9 }, 'evil', false, 2);
    expect(area.get('x')?.record.address).toBe('127.0.0.1:7000');
  });

  it('expires after ttlMs, or after PINGS_PER_CANDIDATE unanswered pings; pings those that spoke first, then the one that told of most', () => {
    const area = new CandidateArea({ max: 50, maxPerSource: 20, ttlMs: 10_000 });
    // told-0 is at 127.0.0.1:5000 and told us of three others: confirming it would vouch for them.
    area.offer(told(0, 5000), 'a', false, 0);
    for (let i = 1; i <= 3; i++) area.offer(told(i), '127.0.0.1:5000', false, 0);
    expect(area.nextToPing()?.record.nodeId).toBe('told-0');
    area.offer(own('speaker', 7000), '127.0.0.1:7000', true, 0);
    const first = area.nextToPing()!;
    expect(first.record.nodeId).toBe('speaker');
    for (let i = 0; i < PINGS_PER_CANDIDATE; i++) {
      expect(area.pingable(first)).toBe(true);
      first.pings++;
      first.awaiting = true;
      expect(area.pingable(first)).toBe(false);
      area.fail(first);
    }
    expect(area.get('speaker')).toBeUndefined();
    expect(area.expired).toBe(1);
    expect(area.takeToldBy('127.0.0.1:5000').map((c) => c.record.nodeId)).toEqual(['told-1', 'told-2', 'told-3']);
    area.offer(told(9), 'b', false, 9_000);
    area.expire(10_000);
    expect(area.get('told-0')).toBeUndefined();
    expect(area.get('told-9')).toBeDefined();
    expect(area.expired).toBe(2);
  });
});
