const RADIX_BITS = 8;
const BUCKETS = 1 << RADIX_BITS;

/**
 * Sorts `hashes` ascending in place, moving `owners` along. Stable (LSD radix, four
 * 8-bit passes), so equal hashes keep their input order: the ring relies on that to
 * break ties by nodeId. Several times faster than a comparison sort at 10^5 points.
 */
export function sortPointsByHash(hashes: Uint32Array, owners: Uint16Array): void {
  const length = hashes.length;
  let fromHashes: Uint32Array = hashes;
  let fromOwners: Uint16Array = owners;
  let toHashes: Uint32Array = new Uint32Array(length);
  let toOwners: Uint16Array = new Uint16Array(length);
  const starts = new Uint32Array(BUCKETS);
  for (let shift = 0; shift < 32; shift += RADIX_BITS) {
    starts.fill(0);
    for (let i = 0; i < length; i++) {
      const bucket = ((fromHashes[i] as number) >>> shift) & (BUCKETS - 1);
      starts[bucket] = (starts[bucket] as number) + 1;
    }
    let sum = 0;
    for (let b = 0; b < BUCKETS; b++) {
      const count = starts[b] as number;
      starts[b] = sum;
      sum += count;
    }
    for (let i = 0; i < length; i++) {
      const hash = fromHashes[i] as number;
      const bucket = (hash >>> shift) & (BUCKETS - 1);
      const to = starts[bucket] as number;
      starts[bucket] = to + 1;
      toHashes[to] = hash;
      toOwners[to] = fromOwners[i] as number;
    }
    [fromHashes, toHashes] = [toHashes, fromHashes];
    [fromOwners, toOwners] = [toOwners, fromOwners];
  }
  // Four passes: the sorted data is back in the caller's arrays.
}
