import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { ClusterView, type ViewMember } from '../../src/node/routing/cluster-view.js';

function view(selfId: string, nodeIds: string[], replicas = 1): { view: ClusterView; clock: ManualClock } {
  const clock = new ManualClock();
  const members: ViewMember[] = nodeIds.map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
  return { view: new ClusterView({ members: { current: () => members }, clock }, { selfId, replicas, maxHandedAwayKeys: 100 }), clock };
}

describe('ClusterView.placeInto: where a request goes, with one hash', () => {
  it('is ownerOf first, then distinct replicas, for any key (property)', () => {
    const { view: v } = view('n0', ['n0', 'n1', 'n2', 'n3'], 2);
    const out: string[] = [];
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), (action, key) => {
        const n = v.placeInto(action, key, out);
        expect(n).toBe(3);
        expect(out[0]).toBe(v.ownerOf(action, key));
        expect(new Set(out.slice(0, n)).size).toBe(3);
      }),
    );
  });

  it('a key handed away goes to its new owner first, then the ring as before; the mark expires', () => {
    const { view: v, clock } = view('n0', ['n0', 'n1', 'n2']);
    const out: string[] = [];
    const ringPlaces = out.slice(0, v.placeInto('a', 'k', out));
    v.markHandedAway('a', 'k', 'n9', clock.now() + 1_000);
    // n9 is not on the ring: the mark is dropped at once, and the ring answers.
    expect(out.slice(0, v.placeInto('a', 'k', out))).toEqual(ringPlaces);
    const other = ['n1', 'n2'].find((id) => id !== ringPlaces[0])!;
    v.markHandedAway('a', 'k', other, clock.now() + 1_000);
    expect(out.slice(0, v.placeInto('a', 'k', out))).toEqual([other, ...ringPlaces]);
    expect(v.ownerOf('a', 'k')).toBe(other);
    clock.advance(1_001);
    expect(out.slice(0, v.placeInto('a', 'k', out))).toEqual(ringPlaces);
  });

  it('one node: it, without hashing; no node: nothing (this node decides)', () => {
    const out: string[] = [];
    expect(view('solo', ['solo']).view.placeInto('a', 'k', out)).toBe(1);
    expect(out[0]).toBe('solo');
    const empty = view('self', []).view;
    expect(empty.placeInto('a', 'k', out)).toBe(0);
    expect(empty.ownerOf('a', 'k')).toBe('self');
  });
});

describe('ClusterView.judgeSender: who may send state about a key', () => {
  it('refuses a settled owner that holds no copy of the key; hears holders, and senders not on the ring yet (their view is ahead) or any more', () => {
    const members: ViewMember[] = ['n0', 'n1', 'n2', 'n3'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
    const v = new ClusterView({ members: { current: () => members }, clock: new ManualClock() }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 10 });
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
