import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Ring, type RingMember } from '../../src/ring/index.js';
import { distinctOwnersInto, pointIndexAt } from '../../src/ring/lookup.js';
import { murmur3 } from '../../src/ring/murmur3.js';
import { buildPointTable, type PointPlacer } from '../../src/ring/points.js';
import { resolveNodes } from '../../src/ring/validate.js';
import { randomKeys } from './helpers.js';

const keys = randomKeys(400, 11);

const nodeId = fc.oneof(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }));
const weight = fc.option(fc.double({ min: 0.25, max: 4, noNaN: true }), { nil: undefined });
const members = (minLength: number): fc.Arbitrary<RingMember[]> =>
  fc
    .uniqueArray(fc.record({ nodeId, weight }), { minLength, maxLength: 10, selector: (m) => m.nodeId })
    .map((list) => list.map(({ nodeId: id, weight: w }) => (w === undefined ? { nodeId: id } : { nodeId: id, weight: w })));
// Few points per node make boundaries and uneven arcs common, which is where movement bugs hide.
const vnodes = fc.integer({ min: 1, max: 48 });

/**
 * Placement moves a key between two members that are on both rings only when balancing
 * changed the point count of one of them (src/ring/layout.ts): the exact form of "a change
 * moves only the keys it must".
 */
function expectOnlyBalancingMoves(before: Ring, after: Ring, key: string): void {
  const was = before.owner(key)!;
  const now = after.owner(key)!;
  if (was === now || !after.has(was) || !before.has(now)) return;
  const recounted = before.pointCountOf(was) !== after.pointCountOf(was) || before.pointCountOf(now) !== after.pointCountOf(now);
  expect(recounted, `${key} moved from ${was} to ${now}, neither recounted`).toBe(true);
}

describe('membership changes (real hash)', () => {
  it('adding a node moves keys to the new node, and between others only where balancing recounted one of them', () => {
    fc.assert(
      fc.property(members(1), nodeId, vnodes, (list, added, vnodesPerNode) => {
        fc.pre(!list.some((m) => m.nodeId === added));
        const before = new Ring(list, { vnodesPerNode });
        const after = before.withMember({ nodeId: added });
        for (const key of keys) expectOnlyBalancingMoves(before, after, key);
      }),
      { numRuns: 150 },
    );
  });

  it("removing a node hands its keys to their first replica unless balancing recounted, and moves the rest only where it recounted", () => {
    fc.assert(
      fc.property(members(2), fc.nat(), vnodes, (list, pick, vnodesPerNode) => {
        const before = new Ring(list, { vnodesPerNode });
        const removed = (list[pick % list.length] as RingMember).nodeId;
        const after = before.withoutMember(removed);
        for (const key of keys) {
          const old = before.owners(key, 2);
          const now = after.owner(key)!;
          if (old[0] !== removed) expectOnlyBalancingMoves(before, after, key);
          else if (now !== old[1]) expect(before.pointCountOf(old[1]!) !== after.pointCountOf(old[1]!) || before.pointCountOf(now) !== after.pointCountOf(now)).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("changing one node's weight moves keys to or from that node, and others only where balancing recounted", () => {
    fc.assert(
      fc.property(members(2), fc.nat(), fc.double({ min: 0.25, max: 4, noNaN: true }), vnodes, (list, pick, w, vnodesPerNode) => {
        const before = new Ring(list, { vnodesPerNode });
        const changed = (list[pick % list.length] as RingMember).nodeId;
        const after = before.withMember({ nodeId: changed, weight: w });
        for (const key of keys) {
          if (before.owner(key) === changed || after.owner(key) === changed) continue;
          expectOnlyBalancingMoves(before, after, key);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('owners are distinct, start with the owner, and ignore member order', () => {
    fc.assert(
      fc.property(members(1), vnodes, fc.integer({ min: 1, max: 12 }), fc.string(), (list, vnodesPerNode, count, key) => {
        const ring = new Ring(list, { vnodesPerNode });
        const reversed = new Ring([...list].reverse(), { vnodesPerNode });
        const owners = ring.owners(key, count);
        expect(owners).toHaveLength(Math.min(count, list.length));
        expect(new Set(owners).size).toBe(owners.length);
        expect(owners[0]).toBe(ring.owner(key));
        expect(reversed.owners(key, count)).toEqual(owners);
      }),
      { numRuns: 200 },
    );
  });
});

/** Only 16 possible positions: nearly every point ties with points of other nodes. */
const coarsePlacer: PointPlacer = (id, count, out, offset) => {
  for (let vnode = 0; vnode < count; vnode++) out[offset + vnode] = (murmur3(`${id}#${vnode}`, 0) & 0xf0000000) >>> 0;
};

/** The Ring's lookup composed over a table built with another placer. */
function tableRing(list: readonly RingMember[], vnodesPerNode: number, placer: PointPlacer) {
  const nodes = resolveNodes(list);
  const nodeIds = nodes.map((node) => node.nodeId);
  const table = buildPointTable(nodes, vnodesPerNode, placer);
  return (hash: number, count: number): string[] => {
    const out: string[] = [];
    distinctOwnersInto(table, nodeIds, pointIndexAt(table, hash), count, out);
    return out;
  };
}

// Every possible point position, its neighbours, and the extremes of the hash space.
const probeHashes = Array.from({ length: 16 }, (_, i) => i * 0x10000000).flatMap((p) => [p, p + 1, (p + 0xfffffff) >>> 0]);

describe('ties between equal points (coarse placer)', () => {
  it('go to the lowest nodeId, whatever the member order', () => {
    const allAtFive: PointPlacer = (_id, count, out, offset) => out.fill(5, offset, offset + count);
    const list = [{ nodeId: 'm' }, { nodeId: 'b' }, { nodeId: 'z' }];
    for (const order of [list, [...list].reverse()]) {
      const ownersOf = tableRing(order, 3, allAtFive);
      for (const hash of [0, 5, 6, 0xffffffff]) expect(ownersOf(hash, 3)).toEqual(['b', 'm', 'z']);
    }
  });

  it('keep adding and removing a node free of cross-movement, with failover to the first replica', () => {
    fc.assert(
      fc.property(members(2), fc.nat(), fc.integer({ min: 1, max: 6 }), (list, pick, vnodesPerNode) => {
        const changed = (list[pick % list.length] as RingMember).nodeId;
        const withNode = tableRing(list, vnodesPerNode, coarsePlacer);
        const withoutNode = tableRing(list.filter((m) => m.nodeId !== changed), vnodesPerNode, coarsePlacer);
        const shuffled = tableRing([...list].reverse(), vnodesPerNode, coarsePlacer);
        for (const hash of probeHashes) {
          const old = withNode(hash, 2);
          expect(shuffled(hash, 2)).toEqual(old);
          const now = withoutNode(hash, 1)[0];
          expect(now).toBe(old[0] === changed ? old[1] : old[0]);
        }
      }),
      { numRuns: 300 },
    );
  });
});
