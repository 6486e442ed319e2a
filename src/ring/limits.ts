/** Documented bounds of a ring. Exported so docs and callers quote the same numbers. */
export const ringLimits = {
  /** Most members in one ring: a point's owner tag holds a slot in 13 bits, and a change needs up to twice the members' slots (src/ring/layout.ts). */
  maxMembers: 4096,
  /** Longest nodeId, in UTF-8 bytes. */
  maxNodeIdBytes: 256,
  /** Largest weight; weight is relative capacity, 1 is a normal node. */
  maxWeight: 64,
  maxVnodesPerNode: 65_536,
  /**
   * Most base points in one ring (Σ weight × vnodesPerNode): twice maxMembers × the default
   * vnodesPerNode. Balancing uses at most twice a member's base points; a point costs 6
   * bytes (4-byte hash, 2-byte owner tag), plus at most 4 MiB of index.
   */
  maxPointCount: 8_388_608,
} as const;

/** Defaults of RingOptions and RingMember. */
export const ringDefaults = {
  /**
   * Base points per node of weight 1. Random points leave a share about 1/sqrt(vnodes) off
   * fair (3 % at 1024); the layout's correction (src/ring/layout.ts) brings every share
   * within about ±4 % of fair from 3 to 4,096 nodes, and a ring of 1,000 nodes takes 8 MiB
   * (bench/ring.ts; docs/decisions/0005-balanced-incremental-ring.md).
   */
  vnodesPerNode: 1024,
  weight: 1,
} as const;
