import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { ClusterView, routingHash, type ViewMember } from '../../src/node/routing/cluster-view.js';
import { OwnerDecision, resolveOnce } from '../../src/node/routing/owner-decision.js';
import { HotKeyMarks } from '../../src/node/sync/hot-key-marks.js';
import { HotKeys } from '../../src/node/sync/hot-keys.js';
import { toWireEntry } from '../../src/node/wire/state-wire.js';

/**
 * A non-owner's copy of a hot key against the owner's answers. The owner's broadcast and the
 * answers to what the non-owner forwarded travel on different streams: a broadcast sent before
 * the owner refused a request may arrive after that refusal (seen in hot-keys.test.ts "slow
 * traffic through all three nodes", 11 admitted of 10, about 1 run in 40 beside two CPU hogs).
 */
describe('a hot key copy made after the owner answered', () => {
  let hot: HotKeys | undefined;
  afterEach(() => hot?.close());

  function nonOwner() {
    const clock = new ManualClock(1_000_000);
    const members: ViewMember[] = ['n0', 'n1'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n1', replicas: 0, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const store = new LimiterStore(clock, { routingHash, trackChanges: true });
    const transport = { send: () => true, onFrame: () => undefined, onPeerDown: () => undefined, disconnect: () => undefined, close: () => Promise.resolve() };
    const marks = new HotKeyMarks(100);
    const decision = new OwnerDecision({ store, hotKeyMarks: marks }, { syncReplication: false });
    hot = new HotKeys({ store, view, transport, clock, decision, marks }, { selfId: 'n1', globalSyncMs: 10, maxGlobalKeys: 100, copyIdleMs: 60_000, maxBatchSize: 100 });
    const key = Array.from({ length: 1_000 }, (_, i) => `k${i}`).find((k) => view.ownerOf('api', k) === 'n0')!;
    const p = resolveOnce({ key, action: 'api', limit: 10, windowMs: 3_600_000, algorithm: 'fixed-window', global: true });
    // The owner's state with 1 of 10 left, as its broadcast carries it.
    const owner = new LimiterStore(clock);
    for (let i = 0; i < 9; i++) owner.allow({ key, action: 'api', limit: 10, windowMs: 3_600_000, algorithm: 'fixed-window' });
    const cells = new Float64Array(4);
    const algorithm = owner.readEntry('api', key, cells);
    if (algorithm === -1) throw new Error('the owner holds the key');
    const staleBroadcast = toWireEntry('api', key, algorithm, cells, 0, clock.now());
    return { clock, hot, p, staleBroadcast };
  }

  it('says no more remains than the owner last answered, and refuses what the owner refused', () => {
    const { hot, p, staleBroadcast } = nonOwner();
    expect(hot.decideFromCopy(p)).toBeUndefined(); // no copy: forwarded
    hot.ownerAnswered(p, { allowed: true, limit: 10, remaining: 0, resetAtMs: 0, retryAfterMs: 0, waitMs: 0 });
    hot.receiveStates([staleBroadcast], 'n0'); // sent before the owner's 10th, arriving after
    expect(hot.decideFromCopy({ ...p, cost: 0 })!.remaining).toBe(0);
    expect(hot.decideFromCopy(p)!.allowed).toBe(false);
  });

  it('an answer older than the broadcast can take (a second) no longer bounds it', () => {
    const { clock, hot, p, staleBroadcast } = nonOwner();
    hot.ownerAnswered(p, { allowed: true, limit: 10, remaining: 0, resetAtMs: 0, retryAfterMs: 0, waitMs: 0 });
    clock.advance(1_500);
    hot.receiveStates([staleBroadcast], 'n0');
    expect(hot.decideFromCopy({ ...p, cost: 0 })!.remaining).toBe(1);
  });
});
