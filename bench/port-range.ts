import { readFileSync } from 'node:fs';

/**
 * Ports the kernel hands out on its own (binding port 0, outgoing connections): Linux's
 * ip_local_port_range, 32768–60999 where it cannot be read. A test or bench that picks a port
 * now and binds it later picks outside it, so no other program's connection or port-0 server
 * takes it meanwhile.
 */
const EPHEMERAL = ((): { low: number; high: number } => {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
    if (Number.isInteger(low) && Number.isInteger(high) && low <= high) return { low, high };
  } catch {
    // not Linux: the usual range
  }
  return { low: 32_768, high: 60_999 };
})();
const LOWEST = 10_000;
const HIGHEST = 65_535;

/** A random port outside the kernel's own range, with `room` ports after it outside too (for runs of consecutive ports). */
export function portToTry(room = 1): number {
  const below = EPHEMERAL.low - LOWEST - room;
  const above = HIGHEST - EPHEMERAL.high - room;
  if (below >= 1_000 || below >= above) return LOWEST + Math.floor(Math.random() * Math.max(1, below));
  return EPHEMERAL.high + 1 + Math.floor(Math.random() * above);
}
