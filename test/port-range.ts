import { readFileSync } from 'node:fs';

/**
 * The lowest port the kernel hands out on its own (binding port 0, outgoing connections):
 * Linux's ip_local_port_range, 32768 where it cannot be read. A test that picks a port now and
 * binds it later picks below it, so no other test's connection or port-0 server takes it meanwhile.
 */
const EPHEMERAL_LOW = ((): number => {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
})();
const LOWEST = 10_000;

/** A random port below the kernel's own range, `room` ports from its end (for runs of consecutive ports). */
export function portToTry(room = 1): number {
  return LOWEST + Math.floor(Math.random() * (EPHEMERAL_LOW - LOWEST - room));
}
