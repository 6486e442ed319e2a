import { formatAddress, type HostPort } from './address.js';
import type { ResolveHost } from './dns-resolver.js';

export interface SeedAddresses {
  /** Gossip addresses to contact, ourselves excluded. */
  readonly addresses: string[];
  /** False when no seed host resolved at all (DNS may still catch up: retry). */
  readonly resolvedAny: boolean;
}

/** Resolve seed hosts (a DNS name may name several nodes), minus our own addresses. */
export async function resolveSeedAddresses(
  seeds: readonly HostPort[],
  resolveHost: ResolveHost,
  ownAddresses: readonly string[],
  maxAddresses: number,
): Promise<SeedAddresses> {
  const addresses = new Set<string>();
  let resolvedAny = false;
  for (const seed of seeds) {
    let hosts: string[];
    try {
      hosts = await resolveHost(seed.host);
    } catch {
      continue;
    }
    resolvedAny = true;
    for (const host of hosts) {
      const address = formatAddress(host, seed.port);
      if (!ownAddresses.includes(address)) addresses.add(address);
    }
  }
  return { addresses: [...addresses].slice(0, maxAddresses), resolvedAny };
}
