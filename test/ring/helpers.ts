import { seededRng } from '../../src/common/rng.js';
import type { RingMember } from '../../src/ring/index.js';

export function nodes(count: number, prefix = 'node-'): RingMember[] {
  return Array.from({ length: count }, (_, i) => ({ nodeId: `${prefix}${i + 1}` }));
}

/** Reproducible random keys shaped like real ones ("user:3f9a0c1e"). */
export function randomKeys(count: number, seed: number): string[] {
  const rng = seededRng(seed);
  return Array.from({ length: count }, () => `user:${rng.int(0x100000000).toString(16)}`);
}
