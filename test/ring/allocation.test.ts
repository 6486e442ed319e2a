import { PerformanceObserver } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { Ring, hashKey } from '../../src/ring/index.js';
import { nodes, randomKeys } from './helpers.js';

const flush = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

/** Garbage collections while `body` runs: allocating even 16 bytes a call means many. */
async function collectionsDuring(body: () => void): Promise<number> {
  let collections = 0;
  const observer = new PerformanceObserver((list) => {
    collections += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  await flush();
  collections = 0;
  body();
  await flush();
  observer.disconnect();
  return collections;
}

/**
 * Four lookups per key and round. The checksum is a local int32: an accumulator
 * captured by a closure would itself be boxed and allocate.
 */
function lookups(ring: Ring, keys: readonly string[], out: string[], rounds: number): number {
  let checksum = 0;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      checksum = (checksum + ring.ownerIndex(key) + (ring.owner(key) as string).length) | 0;
      checksum = (checksum + ring.ownersInto(key, 3, out) + ring.ownerIndexOfHash(Math.imul(i, 0x9e3779b1))) | 0;
    }
  }
  return checksum;
}

describe('hot path allocation', () => {
  const ring = new Ring(nodes(30));
  // Flat strings, ASCII and not: how keys arrive off the wire.
  const keys = [...randomKeys(1000, 5), 'Zürich-ключ-🚀', 'k\ud800'].map((key) => Buffer.from(key).toString());
  const out = ['', '', ''];

  it('owner, ownerIndex, ownersInto and ownerIndexOfHash allocate nothing', async () => {
    let checksum = lookups(ring, keys, out, 300); // let the JIT settle
    // Best of three windows of 2M calls: on a loaded machine the optimizing compiler can
    // lag, and unoptimized code boxes numbers. A real allocation per call shows in every window.
    const windows: number[] = [];
    for (let window = 0; window < 3 && !windows.includes(0); window++) {
      windows.push(await collectionsDuring(() => (checksum ^= lookups(ring, keys, out, 500))));
    }
    let escaped: number[] = [];
    const probe = await collectionsDuring(() => {
      for (let i = 0; i < 1_000_000; i++) escaped = [i, hashKey(keys[i % keys.length] as string)];
    });
    expect(probe, 'the probe must see garbage, or the bound below proves nothing').toBeGreaterThan(2);
    expect(Math.min(...windows), `collections per window of lookups: ${windows.join(', ')}`).toBeLessThanOrEqual(1);
    expect(checksum + escaped.length).not.toBeNaN();
  });
});
