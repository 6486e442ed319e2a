import type { Policies } from '../../limiter/policies.js';
import type { OwnerDecision } from '../routing/owner-decision.js';
import { localRouter, type Router } from '../routing/router.js';
import { policyVersionOf, type PolicyVersion } from '../sync/policy-sync.js';
import type { NodeRole } from './role.js';

/**
 * A node on its own: it owns every key, decides every request, and its policies are its own (version 0).
 * A member's role too until its cluster is up (`joining`): then it is not ready, its cluster not started.
 */
export class LoneNode implements NodeRole {
  readonly router: Router;
  readonly gossipAddress = undefined;
  private held: PolicyVersion;

  constructor(
    private readonly selfId: string,
    decision: OwnerDecision,
    initialPolicies: Policies | undefined,
    /** Puts policies in force on this node. */
    private readonly apply: (policies: Policies | undefined) => void,
    /** A member's stand-in while its cluster starts and joins: never ready (the cluster's role says when it is). */
    private readonly joining = false,
  ) {
    this.router = localRouter(decision);
    this.held = policyVersionOf(initialPolicies, 0);
  }

  members(): [] {
    return [];
  }

  owners(): string[] {
    return [this.selfId];
  }

  ownerOf(): string {
    return this.selfId;
  }

  ownerAddresses(): [] {
    return [];
  }

  gossipStats(): undefined {
    return undefined;
  }

  replicationLag(): undefined {
    return undefined;
  }

  membershipEvents(): Record<string, number> {
    return { join: 0, leave: 0, fail: 0, update: 0 };
  }

  readiness(): { ready: boolean; reason: string } {
    return this.joining ? { ready: false, reason: 'joining' } : { ready: true, reason: 'running alone' };
  }

  info(): { members: object[]; owners: string[]; ownershipShares: Record<string, number> } {
    return { members: [], owners: [this.selfId], ownershipShares: { [this.selfId]: 1 } };
  }

  stats(): undefined {
    return undefined;
  }

  changePolicies(policies: Policies | undefined): PolicyVersion {
    this.held = policyVersionOf(policies, 0);
    this.apply(policies);
    return this.held;
  }

  get policies(): PolicyVersion {
    return this.held;
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
