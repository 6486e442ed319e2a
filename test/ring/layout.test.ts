import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Ring, ringDefaults, type RingMember } from '../../src/ring/index.js';
import { EMPTY_LAYOUT, relayout, type Layout } from '../../src/ring/layout.js';
import { OWNER_MASK, placePoints, type PointPlacer, type RingNode } from '../../src/ring/points.js';
import { resolveNodes } from '../../src/ring/validate.js';
import { randomKeys } from './helpers.js';

const keys = randomKeys(300, 5);

/** Two rings place every key alike: same members, counts, shares, owners and replicas. */
function expectSameRing(incremental: Ring, scratch: Ring, probe: string[]): void {
  expect(incremental.members).toEqual(scratch.members);
  expect(incremental.pointCount).toBe(scratch.pointCount);
  for (const m of scratch.members) expect(incremental.pointCountOf(m.nodeId)).toBe(scratch.pointCountOf(m.nodeId));
  expect(incremental.shares()).toEqual(scratch.shares());
  for (const key of probe) expect(incremental.owners(key, 3)).toEqual(scratch.owners(key, 3));
}

type Op = { kind: 'join'; id: number; weight: number | undefined } | { kind: 'leave'; pick: number } | { kind: 'reweight'; pick: number; weight: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('join' as const), id: fc.integer({ min: 0, max: 40 }), weight: fc.option(fc.constantFrom(0.5, 1, 1.5, 3), { nil: undefined }) }),
  fc.record({ kind: fc.constant('leave' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('reweight' as const), pick: fc.nat(), weight: fc.constantFrom(0.25, 1, 2) }),
);

function apply(list: RingMember[], o: Op): RingMember[] {
  if (o.kind === 'join') return list.some((m) => m.nodeId === `n${o.id}`) ? list : [...list, o.weight === undefined ? { nodeId: `n${o.id}` } : { nodeId: `n${o.id}`, weight: o.weight }];
  if (list.length === 0) return list;
  const target = list[o.pick % list.length]!.nodeId;
  if (o.kind === 'leave') return list.filter((m) => m.nodeId !== target);
  return list.map((m) => (m.nodeId === target ? { nodeId: target, weight: o.weight } : m));
}

describe('the incremental ring', () => {
  it('property: over random join / leave / reweight sequences, each ring made from the last equals a full rebuild', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(op, { minLength: 1, maxLength: 25 }), (vnodesPerNode, ops) => {
        let list: RingMember[] = [];
        let ring = new Ring([], { vnodesPerNode });
        for (const o of ops) {
          list = apply(list, o);
          ring = ring.withMembers(list);
          expectSameRing(ring, new Ring(list, { vnodesPerNode }), keys);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('at the default points, 300 members: 12 changes in a row, each equal to a full rebuild', () => {
    let list: RingMember[] = Array.from({ length: 300 }, (_, i) => ({ nodeId: `10.0.${i >> 8}.${i & 255}:7946` }));
    let ring = new Ring(list);
    const probe = randomKeys(2_000, 9);
    for (let step = 0; step < 12; step++) {
      list = step % 3 === 2 ? list.filter((_, i) => i !== step * 7) : [...list, { nodeId: `10.9.0.${step}:7946`, weight: step % 4 === 0 ? 2 : 1 }];
      ring = ring.withMembers(list);
      expectSameRing(ring, new Ring(list), probe);
    }
    expect(ring.vnodesPerNode).toBe(ringDefaults.vnodesPerNode);
  }, 60_000);

  it('property: with positions crowded onto 48 places (ties everywhere), an incremental layout equals a full one', () => {
    // Ties at one position are ordered by nodeId and many points of one member collide.
    const crowded: PointPlacer = (nodeId, count, out, offset, first) => {
      placePoints(nodeId, count, out, offset, first);
      for (let i = 0; i < count; i++) out[offset + i] = (out[offset + i]! % 48) * 89_478_485;
    };
    /** The layout as its lookups see it: (position, nodeId) in ring order, and counts and shares by member. */
    const seen = (layout: Layout, nodes: readonly RingNode[]): unknown => {
      const idOfSlot = new Map<number, string>();
      layout.slots.forEach((slot, x) => idOfSlot.set(slot, nodes[x]!.nodeId));
      const points = Array.from(layout.active.positions, (position, i) => `${position}:${idOfSlot.get(layout.active.owners[i]! & OWNER_MASK)}`);
      return { points, counts: [...layout.counts], shares: [...layout.shares] };
    };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 24 }), fc.array(op, { minLength: 1, maxLength: 25 }), (vnodesPerNode, ops) => {
        let list: RingMember[] = [];
        let nodes: readonly RingNode[] = [];
        let layout = EMPTY_LAYOUT;
        for (const o of ops) {
          list = apply(list, o);
          const next = resolveNodes(list);
          layout = relayout(nodes, layout, next, vnodesPerNode, crowded);
          nodes = next;
          expect(seen(layout, nodes)).toEqual(seen(relayout([], EMPTY_LAYOUT, nodes, vnodesPerNode, crowded), nodes));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a ring of another vnodesPerNode is rebuilt, not reused', () => {
    const coarse = new Ring([{ nodeId: 'a' }, { nodeId: 'b' }], { vnodesPerNode: 8 });
    const fine = new Ring([{ nodeId: 'a' }, { nodeId: 'b' }, { nodeId: 'c' }], { vnodesPerNode: 64 }, coarse);
    expectSameRing(fine, new Ring([{ nodeId: 'a' }, { nodeId: 'b' }, { nodeId: 'c' }], { vnodesPerNode: 64 }), keys);
  });

  it('takes 4,096 members', () => {
    const ring = new Ring(Array.from({ length: 4096 }, (_, i) => ({ nodeId: `m${i}` })), { vnodesPerNode: 16 });
    expect(ring.size).toBe(4096);
    expect(ring.has(ring.owner('k')!)).toBe(true);
    expect(ring.withoutMember('m4095').size).toBe(4095);
  });
});
