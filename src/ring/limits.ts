/** Documented bounds of a ring. Exported so docs and callers quote the same numbers. */
export const ringLimits = {
  /** Most members in one ring. Also keeps member indexes within a Uint16Array. */
  maxMembers: 1024,
  /** Longest nodeId, in UTF-8 bytes. */
  maxNodeIdBytes: 256,
  /** Largest weight; weight is relative capacity, 1 is a normal node. */
  maxWeight: 64,
  maxVnodesPerNode: 65_536,
  /**
   * Most points in one ring: maxMembers × the default vnodesPerNode, about 52 MiB of
   * tables (a 4-byte hash and a 2-byte owner per point, plus at most 4 MiB of index).
   */
  maxPointCount: 8_388_608,
} as const;

/** Defaults of RingOptions and RingMember. */
export const ringDefaults = {
  /**
   * Points per node of weight 1. A node's share of the ring varies by about
   * 1/sqrt(vnodes); 8192 keeps every share within ±5 % of fair at 3–30 nodes
   * (measured in bench/ring.ts, "vnodes sweep"; 4096 exceeds it in a few % of clusters).
   */
  vnodesPerNode: 8192,
  weight: 1,
} as const;
