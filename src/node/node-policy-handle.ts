import { PolicyTemplate, type PolicyCallOptions, type PolicySpec } from '../limiter/policy-handle.js';
import type { Decision, ResolvedParams } from '../limiter/types.js';

/** What a node policy handle needs from its node: decisions on requests already validated. */
export interface PolicyHandleNode {
  allowResolved(p: ResolvedParams): Promise<Decision>;
  allowNowResolved(p: ResolvedParams): Decision | undefined;
  /** Adaptive limits: the factor in force (1: none). */
  readonly loadFactor: number;
}

/**
 * A precompiled policy on a node (options validated once, one request shape per call; its
 * options are its own: the node's policy document does not apply to it). allowNow(key)
 * answers synchronously for keys decided here; allow(key) also forwards to the owner.
 */
export class NodePolicyHandle {
  private readonly template: PolicyTemplate;

  constructor(
    private readonly node: PolicyHandleNode,
    spec: PolicySpec,
  ) {
    this.template = new PolicyTemplate(spec);
  }

  allow(key: string, options?: PolicyCallOptions): Promise<Decision> {
    let p: ResolvedParams;
    try {
      p = this.template.prepare(key, options, this.node.loadFactor);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.node.allowResolved(p);
  }

  /** The decision now when this node decides the key; undefined when it must be forwarded (then await allow()). */
  allowNow(key: string, options?: PolicyCallOptions): Decision | undefined {
    return this.node.allowNowResolved(this.template.prepare(key, options, this.node.loadFactor));
  }
}
