/**
 * How keys sit on a ring, for nodes and the ring-aware client alike: the routing key and its
 * hash, and a ring's version. ClusterView (cluster-view.ts) answers every question with them.
 */
import { fnv1a32 } from '../../common/fnv.js';
import { hashKey, type Ring } from '../../ring/index.js';

/** A ring as it was at some moment (ClusterView.currentRing): only ClusterView asks it who owns a key. */
export type RingSnapshot = Ring;

/** Names how keys are placed (the Members RPC tells clients): routingKey() on the Ring of src/ring. */
export const PLACEMENT = 'ringlimit-ring-v2';

/** What the ring places for (action, key): both parts, so one user's actions spread over nodes. */
export function routingKey(action: string, key: string): string {
  return `${action}\u0000${key}`;
}

/**
 * Where (action, key) sits on the ring: every question about a key starts from this one hash.
 * The store keeps it per key (StoreOptions.routingHash), so the walks after a ring change and
 * the replication of changed keys ask the ring without hashing again.
 */
export function routingHash(action: string, key: string): number {
  return hashKey(routingKey(action, key)) | 0;
}

/** A ring's version: a digest of its owners, the same wherever the same owners are seen. */
export function versionOf(ring: Ring): string {
  const ids = ring.members.map((m) => m.nodeId).sort();
  return `${ids.length}.${fnv1a32(ids.join('\n')).toString(36)}`;
}

/** The ring's only member, when it has exactly one. */
export function soleNodeOf(ring: Ring): string | undefined {
  return ring.size === 1 ? ring.nodeIdAt(0) : undefined;
}
