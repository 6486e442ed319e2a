import type { WireRingMember } from './proto.js';

/** How long a node reuses the digest it computed (it changes only with the ring or a handoff's end). */
const DIGEST_REUSE_MS = 100;

/**
 * A 32-bit digest (FNV-1a) of the owners the Members RPC names, ids and addresses sorted by
 * id: what every AllowStream answer carries (field 3) so that a ring-aware client asks for the
 * owners as soon as the node it talks to names others, not at its next ringRefreshMs. Never 0
 * (0: a node that sends none).
 */
export function ownersDigest(owners: readonly WireRingMember[]): number {
  const sorted = [...owners].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  let h = 0x811c9dc5;
  const mix = (text: string): void => {
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0;
    h = Math.imul(h, 0x01000193);
  };
  for (const o of sorted) {
    mix(o.nodeId);
    mix(o.address);
  }
  return h >>> 0 || 1;
}

/** ownersDigest of `owners()`, recomputed at most every DIGEST_REUSE_MS: read once per answer message. */
export function cachedOwnersDigest(owners: () => readonly WireRingMember[], nowMs: () => number = () => performance.now()): () => number {
  let digest = 0;
  let computedAtMs = Number.NEGATIVE_INFINITY;
  return () => {
    const now = nowMs();
    if (now - computedAtMs >= DIGEST_REUSE_MS) {
      const list = owners();
      digest = list.length === 0 ? 0 : ownersDigest(list);
      computedAtMs = now;
    }
    return digest;
  };
}
