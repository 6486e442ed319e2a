import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve.js';
import { ManualClock } from '../../src/common/clock.js';
import type { Member } from '../../src/gossip/index.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { RETURN_SETTLE_MAX_MS, SplitShare } from '../../src/node/cluster/split-share.js';
import { ClusterView, META_STATE, type ViewMember } from '../../src/node/routing/cluster-view.js';
import { OwnerDecision, resolveOnce } from '../../src/node/routing/owner-decision.js';

const WINDOW_MS = 86_400_000;
const request = (key: string) => ({ key, action: 'a', limit: 100, windowMs: WINDOW_MS, algorithm: 'fixed-window' as const });

function gossipMember(nodeId: string, state: Member['state'] = 'alive', lifecycle = 'active'): Member {
  return { nodeId, address: `${nodeId}:7946`, generation: 1, incarnation: 1, meta: { [META_STATE]: lifecycle }, state };
}

/** One side's node: its view (all five members, as before the split), store, split rule and decision. */
function side(selfId: string, clock: ManualClock) {
  const members: ViewMember[] = ['n0', 'n1', 'n2', 'n3', 'n4'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
  const view = new ClusterView({ members: { current: () => members }, clock }, { selfId, replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
  const store = new LimiterStore(clock, {});
  const split = new SplitShare({ clock, view }, { selfId, splitShareMs: 60_000, maxKnownMembers: 100 });
  const decision = new OwnerDecision({ store, split }, { syncReplication: false });
  return { view, store, split, decision };
}

describe('the split rule: each side spends only its share', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  it('a 2/3 split of five members: from a state with 40 left, the sides admit 16 and 24 — 40 together, never more', () => {
    const clock = new ManualClock(1_000_000);
    const a = side('n0', clock);
    const b = side('n2', clock);
    closers.push(() => a.split.close(), () => b.split.close());
    const everyone = ['n0', 'n1', 'n2', 'n3', 'n4'].map((id) => gossipMember(id));
    a.split.observe(everyone);
    b.split.observe(everyone);
    // The key's state before the split: 60 of 100 used, on both sides (owner and replica).
    for (let i = 0; i < 60; i++) {
      a.store.allow(request('k'));
      b.store.allow(request('k'));
    }
    // The split: each side sees the other's members suspected, then gone.
    a.split.observe(everyone.filter((m) => ['n0', 'n1'].includes(m.nodeId)));
    b.split.observe([...everyone.filter((m) => !['n0', 'n1'].includes(m.nodeId)), gossipMember('n0', 'suspect')]);
    expect(a.split.value).toBeCloseTo(2 / 5);
    expect(b.split.value).toBeCloseTo(3 / 5);
    const admitted = (s: ReturnType<typeof side>): number => {
      let n = 0;
      for (let i = 0; i < 100; i++) if (s.decision.decideNow(resolveOnce(request('k')), -1)!.allowed) n++;
      return n;
    };
    const byA = admitted(a);
    const byB = admitted(b);
    expect(byA).toBe(16);
    expect(byB).toBe(24);
    expect(byA + byB).toBe(40);
  });

  it('a key with no state here whose holders are all out of reach is refused; one with a holder on this side starts fresh, at the share', () => {
    const clock = new ManualClock(1_000_000);
    const a = side('n0', clock);
    closers.push(() => a.split.close());
    a.split.observe(['n0', 'n1', 'n2', 'n3', 'n4'].map((id) => gossipMember(id)));
    a.split.observe(['n0', 'n1'].map((id) => gossipMember(id)));
    const keys = Array.from({ length: 400 }, (_, i) => `u${i}`);
    const heldAway = keys.filter((k) => a.split.unknownElsewhere('a', k));
    const heldHere = keys.filter((k) => !a.split.unknownElsewhere('a', k));
    // Owner and replica both on the other side (n2, n3, n4): (3/5)·(2/4) = 30 % of the keys;
    // the others have a holder on this side, which would hold their state had they been used.
    expect(heldAway.length).toBeGreaterThan(80);
    expect(heldAway.length).toBeLessThan(160);
    expect(heldHere.length).toBeGreaterThan(240);
    const d = a.decision.decideNow(resolveOnce(request(heldAway[0]!)), -1)!;
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeGreaterThan(0);
    expect(a.decision.refusedUnknown).toBe(1);
    let admitted = 0;
    for (let i = 0; i < 100; i++) if (a.decision.decideNow(resolveOnce(request(heldHere[0]!)), -1)!.allowed) admitted++;
    expect(admitted).toBe(40);
  });

  it('a member out of reach for splitShareMs is declared dead: the side decides alone again; one that left gracefully never counted', () => {
    const clock = new ManualClock(1_000_000);
    const a = side('n0', clock);
    closers.push(() => a.split.close());
    a.split.observe(['n0', 'n1', 'n2'].map((id) => gossipMember(id)));
    a.split.left('n2');
    a.split.observe(['n0', 'n1'].map((id) => gossipMember(id)));
    expect(a.split.value).toBe(1);
    a.split.observe(['n0'].map((id) => gossipMember(id)));
    expect(a.split.value).toBeCloseTo(1 / 2);
    clock.advance(59_999);
    a.split.observe(['n0'].map((id) => gossipMember(id)));
    expect(a.split.value).toBeCloseTo(1 / 2);
    clock.advance(1);
    a.split.observe(['n0'].map((id) => gossipMember(id)));
    expect(a.split.value).toBe(1);
    expect(a.split.stats.splits).toBe(1);
  });

  it('a restarted node counts the members its snapshot saw as out of reach until it sees them again', () => {
    const clock = new ManualClock(1_000_000);
    const a = side('n0', clock);
    closers.push(() => a.split.close());
    a.split.remember(['n1', 'n2', 'n3', 'n4']);
    a.split.observe([gossipMember('n0')]);
    expect(a.split.value).toBeCloseTo(1 / 5);
    a.split.observe(['n0', 'n1', 'n2', 'n3'].map((id) => gossipMember(id)).concat(gossipMember('n4', 'alive', 'joining')));
    // Back in reach, but counted once their push for the ring is announced (and this node's).
    expect(a.split.value).toBeCloseTo(1 / 5);
    for (const id of ['n0', 'n1', 'n2', 'n3']) a.view.noteHandedOver(id, a.view.ringVersion);
    a.split.handoffNews();
    expect(a.split.value).toBeCloseTo(4 / 5);
    a.split.observe(['n0', 'n1', 'n2', 'n3', 'n4'].map((id) => gossipMember(id)));
    expect(a.split.value).toBeCloseTo(4 / 5);
    a.view.noteHandedOver('n4', a.view.ringVersion);
    a.split.handoffNews();
    expect(a.split.value).toBe(1);
  });

  it('after the heal a member back in reach counts as missing until both sides announced their push for the ring (the states merged), at most 10 s', () => {
    const clock = new ManualClock(1_000_000);
    const a = side('n0', clock);
    closers.push(() => a.split.close());
    const everyone = ['n0', 'n1', 'n2', 'n3', 'n4'].map((id) => gossipMember(id));
    a.split.observe(everyone);
    a.split.observe(['n0', 'n1'].map((id) => gossipMember(id)));
    expect(a.split.value).toBeCloseTo(2 / 5);
    a.split.observe(everyone); // healed: in reach, not merged yet
    expect(a.split.value).toBeCloseTo(2 / 5);
    const version = a.view.ringVersion;
    for (const id of ['n2', 'n3', 'n4']) a.view.noteHandedOver(id, version);
    a.split.handoffNews();
    expect(a.split.value).toBeCloseTo(2 / 5); // this node's own push not announced yet
    a.view.noteHandedOver('n0', version);
    a.split.handoffNews();
    expect(a.split.value).toBe(1);

    // An announcement lost: the member counts again after RETURN_SETTLE_MAX_MS.
    const b = side('n0', clock);
    closers.push(() => b.split.close());
    b.split.observe(everyone);
    b.split.observe(['n0', 'n1', 'n2'].map((id) => gossipMember(id)));
    b.split.observe(everyone);
    expect(b.split.value).toBeCloseTo(3 / 5);
    clock.advance(RETURN_SETTLE_MAX_MS - 1);
    b.split.handoffNews();
    expect(b.split.value).toBeCloseTo(3 / 5);
    clock.advance(1);
    b.split.handoffNews();
    expect(b.split.value).toBe(1);
  });

  it('a forward no holder answered (a split gossip has not seen yet) is refused for a key with no state here, decided at the share for one held', async () => {
    const clock = new ManualClock(1_000_000);
    const a = side('n0', clock);
    closers.push(() => a.split.close());
    a.split.observe(['n0', 'n1', 'n2', 'n3', 'n4'].map((id) => gossipMember(id)));
    const refused = await a.decision.decideUnreached(resolveOnce(request('never-seen')), -1);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(a.decision.refusedUnknown).toBe(1);
    a.store.allow(request('held'));
    expect((await a.decision.decideUnreached(resolveOnce(request('held')), -1)).allowed).toBe(true);
  });
});

describe('serve --split-share', () => {
  it('sets splitShareMs (0: the rule off) and refuses what is not a duration', () => {
    expect(parseServeArgs(['--split-share', '10s']).options.splitShareMs).toBe(10_000);
    expect(parseServeArgs(['--split-share', '0']).options.splitShareMs).toBe(0);
    expect(parseServeArgs([]).options.splitShareMs).toBeUndefined();
    expect(() => parseServeArgs(['--split-share', 'soon'])).toThrow(/--split-share/);
  });
});
