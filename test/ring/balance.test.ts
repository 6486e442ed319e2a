import { describe, expect, it } from 'vitest';
import { Ring, ringDefaults } from '../../src/ring/index.js';
import { buildPointTable } from '../../src/ring/points.js';
import { resolveNodes } from '../../src/ring/validate.js';
import { nodes, randomKeys } from './helpers.js';

const RING_SPAN = 2 ** 32;
const TOLERANCE = 0.05;

/** Exact fraction of the hash space each node owns, by summing its arcs. */
function arcShares(nodeCount: number): number[] {
  const { points, pointOwners } = buildPointTable(resolveNodes(nodes(nodeCount)), ringDefaults.vnodesPerNode);
  const shares = new Array<number>(nodeCount).fill(0);
  for (let i = 0; i < points.length; i++) {
    const previous = i === 0 ? (points[points.length - 1] as number) - RING_SPAN : (points[i - 1] as number);
    const owner = pointOwners[i] as number;
    shares[owner] = (shares[owner] as number) + ((points[i] as number) - previous) / RING_SPAN;
  }
  return shares;
}

const worstDeviation = (values: number[], fair: number): number =>
  Math.max(...values.map((value) => Math.abs(value / fair - 1)));

describe('balance at the default vnodes', () => {
  const keys = randomKeys(100_000, 2024);

  it.each([3, 10, 30])('%i nodes: every node gets within ±5 %% of its fair share of 100k keys', (nodeCount) => {
    const ring = new Ring(nodes(nodeCount));
    const counts = new Array<number>(nodeCount).fill(0);
    for (const key of keys) {
      const owner = ring.ownerIndex(key);
      counts[owner] = (counts[owner] as number) + 1;
    }
    expect(worstDeviation(counts, keys.length / nodeCount)).toBeLessThanOrEqual(TOLERANCE);
  });

  // Keys add sampling noise (about 1.7 % per node at 30 nodes); the arcs are the ring's own balance.
  it.each([3, 10, 30])('%i nodes: every node owns within ±5 %% of the hash space', (nodeCount) => {
    expect(worstDeviation(arcShares(nodeCount), 1 / nodeCount)).toBeLessThanOrEqual(TOLERANCE);
  });
});
