import { fnv1a32 } from '../common/fnv.js';
import { StateCode, type StateDigest } from './messages.js';
import type { MemberState } from './types.js';

/** What a member contributes: its id's hash (computed once per entry) and its version and state. */
export interface DigestInput {
  readonly idHash: number;
  readonly generation: number;
  readonly incarnation: number;
  readonly state: MemberState;
}

const SEED_A = 0x9e3779b9;
const SEED_B = 0x85ebca77;
const TWO_POW_32 = 2 ** 32;

/** A member id's hash, computed once per entry. */
export function idHash(nodeId: string): number {
  return fnv1a32(nodeId);
}

/** murmur3's finaliser: every input bit reaches every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function memberHash(seed: number, m: DigestInput): number {
  let h = mix(seed ^ m.idHash);
  h = mix(h ^ (m.generation >>> 0));
  h = mix(h ^ Math.floor(m.generation / TWO_POW_32));
  h = mix(h ^ (m.incarnation >>> 0));
  h = mix(h ^ Math.floor(m.incarnation / TWO_POW_32));
  return mix(h ^ StateCode[m.state]);
}

/**
 * The digest two members compare before a push-pull: equal digests mean equal live views
 * (self included), and the full exchange is skipped. Order-independent (a sum of per-member
 * hashes) in two independent 32-bit lanes: a difference goes unseen with probability ~2^-64.
 */
export function stateDigest(self: DigestInput, live: readonly DigestInput[]): StateDigest {
  let a = memberHash(SEED_A, self);
  let b = memberHash(SEED_B, self);
  for (const m of live) {
    a = (a + memberHash(SEED_A, m)) >>> 0;
    b = (b + memberHash(SEED_B, m)) >>> 0;
  }
  return { a, b, count: live.length + 1 };
}

export function sameDigest(x: StateDigest, y: StateDigest): boolean {
  return x.a === y.a && x.b === y.b && x.count === y.count;
}
