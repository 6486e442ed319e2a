import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { ClusterView, HERE, NO_RING, routingHash, type ViewMember } from '../../src/node/routing/cluster-view.js';

function view(selfId: string, nodeIds: string[], replicas = 1): { view: ClusterView; clock: ManualClock } {
  const clock = new ManualClock();
  const members: ViewMember[] = nodeIds.map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
  return { view: new ClusterView({ members: { current: () => members }, clock }, { selfId, replicas, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 }), clock };
}

describe('the routing hash a store keeps per key', () => {
  it('is the ring\'s hash of the key: every answer asked by hash equals the answer asked by name (property)', () => {
    const clock = new ManualClock();
    const store = new LimiterStore(clock, { routingHash });
    const members: ViewMember[] = ['n0', 'n1', 'n2', 'n3'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
    let current = members.slice(0, 3);
    const v = new ClusterView({ members: { current: () => current }, clock }, { selfId: 'n1', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const baseline = v.currentRing;
    current = members; // n3 joins: the view has a previous ring now
    v.refresh();
    const a: string[] = [];
    const b: string[] = [];
    fc.assert(
      fc.property(fc.string({ maxLength: 8 }), fc.string({ minLength: 1, maxLength: 16 }), (action, key) => {
        store.allow({ action: action === '' ? 'default' : action, key, limit: 5, windowMs: 1000 });
        const name = action === '' ? 'default' : action;
        let seen = 0;
        store.forEachEntry((act, k, _algorithm, _cells, _base, hash) => {
          if (act !== name || k !== key) return;
          seen++;
          expect(hash).toBe(routingHash(act, k));
          expect(v.holdersOfHash(hash, a)).toBe(v.holdersInto(act, k, b));
          expect(a.slice(0, 2)).toEqual(b.slice(0, 2));
          expect(v.decidesHere(act, k, hash)).toBe(v.decidesHere(act, k));
          expect(v.handOverTo(act, k, hash)).toBe(v.handOverTo(act, k));
          expect(v.holdersOnInto(baseline, act, k, a, hash)).toBe(v.holdersOnInto(baseline, act, k, b));
          expect(a.slice(0, 2)).toEqual(b.slice(0, 2));
          expect(v.placementOfHash(act, k, hash, a)).toBe(v.placement(act, k, b));
        });
        expect(seen).toBe(1);
      }),
      { numRuns: 200 },
    );
  });
});

describe('ClusterView.placement: where a request goes, with one hash', () => {
  it('is ownerOf first, then distinct replicas, for any key (property)', () => {
    // Seen from outside the ring (a client's view): every key is placed, none decided here.
    const { view: v } = view('client', ['n0', 'n1', 'n2', 'n3'], 2);
    const out: string[] = [];
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), (action, key) => {
        const n = v.placement(action, key, out);
        expect(n).toBe(3);
        expect(out[0]).toBe(v.ownerOf(action, key));
        expect(new Set(out.slice(0, n)).size).toBe(3);
      }),
    );
  });

  it('is HERE where this node owns the key, NO_RING on an empty ring, and the owner first elsewhere', () => {
    const { view: v } = view('n0', ['n0', 'n1', 'n2']);
    const out: string[] = [];
    let here = 0;
    for (let i = 0; i < 300; i++) {
      const key = `k${i}`;
      const places = v.placement('a', key, out);
      if (v.ownerOf('a', key) === 'n0') {
        here++;
        expect(places).toBe(HERE);
        expect(v.decidesHere('a', key)).toBe(true);
      } else {
        expect(places).toBe(2);
        expect(out[0]).toBe(v.ownerOf('a', key));
        expect(v.decidesHere('a', key)).toBe(false);
      }
    }
    expect(here).toBeGreaterThan(50);
    const { view: empty } = view('n0', []);
    expect(empty.placement('a', 'k', out)).toBe(NO_RING);
    expect(empty.decidesHere('a', 'k')).toBe(false);
  });

  it('a key handed away goes to its new owner first, then the ring as before; the mark expires', () => {
    const { view: v, clock } = view('client', ['n0', 'n1', 'n2']);
    const out: string[] = [];
    const ringPlaces = out.slice(0, v.placement('a', 'k', out));
    v.markHandedAway('a', 'k', 'n9', clock.now() + 1_000);
    // n9 is not on the ring: the mark is dropped at once, and the ring answers.
    expect(out.slice(0, v.placement('a', 'k', out))).toEqual(ringPlaces);
    const other = ['n1', 'n2'].find((id) => id !== ringPlaces[0])!;
    v.markHandedAway('a', 'k', other, clock.now() + 1_000);
    expect(out.slice(0, v.placement('a', 'k', out))).toEqual([other, ...ringPlaces]);
    expect(v.ownerOf('a', 'k')).toBe(other);
    clock.advance(1_001);
    expect(out.slice(0, v.placement('a', 'k', out))).toEqual(ringPlaces);
  });

  it('one node: it, without hashing (HERE when it is this node); no node: NO_RING (nobody decides)', () => {
    const out: string[] = [];
    expect(view('solo', ['solo']).view.placement('a', 'k', out)).toBe(HERE);
    expect(view('client', ['solo']).view.placement('a', 'k', out)).toBe(1);
    expect(out[0]).toBe('solo');
    const empty = view('self', []).view;
    expect(empty.placement('a', 'k', out)).toBe(NO_RING);
  });
});

describe('ClusterView.judgeSender: who may send state about a key', () => {
  it('refuses a settled owner that holds no copy of the key; hears holders, and senders not on the ring yet (their view is ahead) or any more', () => {
    const members: ViewMember[] = ['n0', 'n1', 'n2', 'n3'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
    const v = new ClusterView({ members: { current: () => members }, clock: new ManualClock() }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 10, handoffWindowMs: 10_000 });
    const out: string[] = [];
    let key = '';
    for (let i = 0; ; i++) {
      key = `k${i}`;
      v.holdersInto('a', key, out);
      if (out[0] === 'n0' && out[1] !== 'n3') break;
    }
    const nonHolder = ['n1', 'n2', 'n3'].find((n) => n !== out[1])!;
    expect(v.judgeSender(out[1]!, 'a', key)).toBe(1); // the replica: heard, and this node owns it
    expect(v.judgeSender(nonHolder, 'a', key)).toBe(0); // on the ring, holds nothing of it: refused
    // A node that turned active but is not on this ring yet re-sends its keys: heard.
    expect(v.judgeSender('n9', 'a', key)).toBe(1);
  });
});
