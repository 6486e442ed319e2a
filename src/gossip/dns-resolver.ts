import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** Resolves a seed host to every address it names (IP literals pass through). */
export type ResolveHost = (host: string) => Promise<string[]>;

/** node:dns adapter: getaddrinfo with all:true, so one name can list many nodes. */
export const resolveWithDns: ResolveHost = async (host) => {
  if (isIP(host) !== 0) return [host];
  const found = await lookup(host, { all: true });
  return found.map((a) => a.address);
};
