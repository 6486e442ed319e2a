/**
 * ringlimit as the cluster bench calls it: through RingLimitClient to `serve` processes,
 * or through an embedded member's `node.allow`, with hot-key mode (`global`) off or on.
 * Every call asks for the same huge limit: all allowed, so throughput is what is measured.
 */
import { systemClock } from '../src/common/clock.js';
import type { RateLimitRequest } from '../src/limiter/types.js';
import { RingLimitClient, type ClientOptions } from '../src/node/client/client.js';
import { ClusterView } from '../src/node/routing/cluster-view.js';
import type { RingLimitNode } from '../src/node/node.js';
import type { Contender } from './peers/redis.js';

export const LIMIT = 1_000_000_000;
export const WINDOW_SECONDS = 60;
export const ACTION = 'bench';

function request(key: string, global: boolean): RateLimitRequest {
  return global ? { key, action: ACTION, limit: LIMIT, windowMs: WINDOW_SECONDS * 1000, global: true } : { key, action: ACTION, limit: LIMIT, windowMs: WINDOW_SECONDS * 1000 };
}

/**
 * A client for the bench: the default options but a 10 s deadline, so that an open-loop
 * run that outpaces the nodes shows queueing in its latency instead of timeouts, retries
 * and dropped streams (the default 2 s would cut in under overload).
 */
export function benchClient(addresses: string[], options: Partial<ClientOptions> = {}): RingLimitClient {
  return new RingLimitClient({ nodes: addresses, timeoutMs: 10_000, ...options });
}

/** Calls through `client`; closing the contender closes the client unless `shared`. */
export function clientContender(name: string, short: string, client: RingLimitClient, options: { global?: boolean; shared?: boolean } = {}): Contender {
  const global = options.global === true;
  return {
    name,
    short,
    call: (key) => client.allow(request(key, global)),
    close: async () => {
      if (options.shared !== true) client.close();
    },
  };
}

/** Calls `node.allow`; closing the contender stops the node unless `shared`. */
export function embeddedContender(name: string, short: string, node: RingLimitNode, options: { global?: boolean; shared?: boolean } = {}): Contender {
  const global = options.global === true;
  return {
    name,
    short,
    call: (key) => node.allow(request(key, global)),
    close: () => (options.shared === true ? Promise.resolve() : node.stop({ graceful: false })),
  };
}

/**
 * Who owns (ACTION, key) among `nodeIds` once they are all active: the placement a
 * ring-aware client computes, for a `serve` cluster the bench cannot ask directly.
 */
export function ownerAmong(nodeIds: readonly string[]): (key: string) => string {
  const members = nodeIds.map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
  const view = new ClusterView({ members: { current: () => members }, clock: systemClock }, { selfId: '', replicas: 0, maxHandedAwayKeys: 0, handoffWindowMs: 0 });
  return (key) => view.ownerOf(ACTION, key);
}
