import { cachedOwnersDigest, ownersDigest } from './api/owners-digest.js';
import type { EnvoyDescriptors } from '../envoy/descriptors.js';
import type { EnvoySettings } from '../envoy/answer.js';
import type { EnvoyStats } from '../envoy/stats.js';
import type { Policies } from '../limiter/policies.js';
import type { Decision, RateLimitRequest, Reservation } from '../limiter/types.js';
import type { PublicApiBackend } from './api/backend.js';
import type { HttpApiBackend } from './api/http-api.js';
import type { WirePoliciesInfo } from './api/proto.js';
import type { NodeRole } from './cluster/role.js';
import { PLACEMENT } from './routing/cluster-view.js';

/** What the gRPC and HTTP APIs need of a node's public face (RingLimitNode is one). */
export interface ServedNode {
  readonly nodeId: string;
  readonly envoyConfig: EnvoyDescriptors | undefined;
  readonly envoyStats: EnvoyStats;
  readonly loadFactor: number;
  readonly options: { readonly envoy: EnvoySettings };
  recordCallerTime(timestampMs: number): void;
  setPolicies(policies: Policies | undefined): number;
  setLoadFactor(factor: number): void;
  inspect(request: RateLimitRequest, options: { by?: string }): Promise<Decision>;
  reset(request: RateLimitRequest, options: { by?: string }): Promise<Decision>;
  setRemaining(request: RateLimitRequest, remaining: number, options: { by?: string }): Promise<Decision>;
  stats(): { policies: { version: number } };
  /** The Prometheus registry (prom-client's, read at each scrape). */
  metrics(): { readonly contentType: string; metrics(): Promise<string> };
}

/** What the node is now (lone or member, and whether it stops), and its request path. */
export interface BackendSources {
  role(): NodeRole;
  stopping(): boolean;
  decide: PublicApiBackend['decide'];
  /** Reads a SetPolicies document off the event loop (rejects with INVALID_ARGUMENT naming it, RESOURCE_EXHAUSTED past a bound). */
  parsePolicies(text: string): Promise<Policies>;
}

/** The backend every API of a node calls: the request path for decisions, the node and its role for the rest. */
export function nodeBackend(node: ServedNode, sources: BackendSources): HttpApiBackend {
  const policyInfo = (): WirePoliciesInfo => {
    const held = sources.role().policies;
    return { version: held.version, digest: held.digest, document: held.text };
  };
  const admin = async (op: 'inspect' | 'reset' | 'set', request: RateLimitRequest, remaining: number | undefined, by: string): Promise<Reservation> => {
    const d = op === 'inspect' ? await node.inspect(request, { by }) : op === 'reset' ? await node.reset(request, { by }) : await node.setRemaining(request, remaining ?? Number.NaN, { by });
    return { ...d, waitMs: 0 };
  };
  return {
    nodeId: node.nodeId,
    decide: sources.decide,
    members: () => {
      const owners = sources.role().ownerAddresses();
      return { owners, placement: PLACEMENT, ring: owners.length === 0 ? 0 : ownersDigest(owners) };
    },
    ringDigest: cachedOwnersDigest(() => sources.role().ownerAddresses()),
    health: () => ({ nodeId: node.nodeId, status: sources.stopping() ? 'draining' : sources.role().readiness().ready ? 'active' : 'joining', owners: sources.role().owners(), members: sources.role().members().length }),
    recordCallerTime: (timestampMs) => node.recordCallerTime(timestampMs),
    setPolicies: async (text) => {
      node.setPolicies(text.trim() === '' ? undefined : await sources.parsePolicies(text));
      return policyInfo();
    },
    getPolicies: policyInfo,
    setLoadFactor: (factor) => {
      node.setLoadFactor(factor);
      return node.loadFactor;
    },
    envoy: () => ({ config: node.envoyConfig, settings: node.options.envoy, stats: node.envoyStats }),
    admin,
    // Ready for traffic: a lone node once started; a member once active and owning keys; never while stopping.
    ready: () => (sources.stopping() ? { ready: false, reason: 'draining' } : sources.role().readiness()),
    cluster: () => ({ nodeId: node.nodeId, ...sources.role().info(), policyVersion: node.stats().policies.version, loadFactor: node.loadFactor }),
    metrics: async () => {
      const registry = node.metrics();
      return { contentType: registry.contentType, text: await registry.metrics() };
    },
  };
}
