import { describe, expect, it } from 'vitest';
import { Ring } from '../../src/ring/index.js';
import { nodes, randomKeys } from './helpers.js';

const TOLERANCE = 0.05;
const KEY_COUNT = 100_000;

/** Exact fraction of the hash space each node owns, by summing its arcs (in member order). */
function arcShares(nodeCount: number): number[] {
  const ring = new Ring(nodes(nodeCount));
  const shares = ring.shares();
  return ring.members.map((m) => shares.get(m.nodeId)!);
}

function keyCounts(nodeCount: number, keys: string[]): number[] {
  const ring = new Ring(nodes(nodeCount));
  const counts = new Array<number>(nodeCount).fill(0);
  for (const key of keys) {
    const owner = ring.ownerIndex(key);
    counts[owner] = (counts[owner] as number) + 1;
  }
  return counts;
}

const worstDeviation = (values: number[], fair: number): number =>
  Math.max(...values.map((value) => Math.abs(value / fair - 1)));

describe('balance at the default vnodes', () => {
  const keys = randomKeys(KEY_COUNT, 2024);

  // The ring's own balance: exact, no sampling.
  it.each([3, 10, 30, 100])('%i nodes: every node owns within ±5 %% of the hash space', (nodeCount) => {
    expect(worstDeviation(arcShares(nodeCount), 1 / nodeCount)).toBeLessThanOrEqual(TOLERANCE);
  });

  it('1,000 and 4,096 nodes named like addresses, 3 clusters each: every node within ±5 % of fair, and 1,000 nodes take at most 16 MiB', () => {
    for (const [count, seed] of [
      [1000, 1],
      [1000, 2],
      [1000, 3],
      [4096, 4],
    ] as const) {
      const ring = new Ring(Array.from({ length: count }, (_, i) => ({ nodeId: `10.${seed}.${i >> 8}.${i & 255}:7946` })));
      expect(worstDeviation([...ring.shares().values()], 1 / count)).toBeLessThanOrEqual(TOLERANCE);
      if (count === 1000) expect(ring.byteSize()).toBeLessThanOrEqual(16 * 2 ** 20);
    }
  }, 30_000);

  // The arc shares are the guarantee; keys sampled from them carry sampling noise on top (about ±1.7 % per node, one sigma, at 30 nodes and 100k keys).
  it.each([3, 10, 30])('%i nodes: key counts follow the arc shares within sampling noise', (nodeCount) => {
    const counts = keyCounts(nodeCount, keys);
    arcShares(nodeCount).forEach((share, node) => {
      const sigma = Math.sqrt(KEY_COUNT * share * (1 - share));
      expect(Math.abs((counts[node] as number) - KEY_COUNT * share)).toBeLessThan(4.5 * sigma);
    });
  });
});
