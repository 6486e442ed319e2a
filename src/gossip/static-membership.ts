import { invalidArgument } from '../common/errors.js';
import { isValidIpAddress } from './address.js';
import { resolveLimits, type SwimLimits } from './defaults.js';
import { MembershipEmitter } from './emitter.js';
import { checkedMeta, sameMeta } from './meta.js';
import type { Member, MembershipEventName, MembershipEvents, Membership, Meta } from './types.js';
import { isValidNodeId } from './validate.js';

export interface StaticMemberSpec {
  readonly nodeId: string;
  readonly address: string;
  readonly meta?: Meta;
}

export interface StaticMembershipOptions {
  /** This node. */
  readonly self: StaticMemberSpec;
  /** The other members; fixed for the lifetime of the membership. */
  readonly peers?: readonly StaticMemberSpec[];
  readonly limits?: Partial<SwimLimits>;
}

/**
 * A fixed member list: the single-node embedded default, and a stand-in for tests.
 * Everyone is always alive; only our own metadata changes.
 */
export class StaticMembership implements Membership {
  private readonly emitter = new MembershipEmitter();
  private me: Member;
  private readonly peers: readonly Member[];

  constructor(options: StaticMembershipOptions) {
    const limits = resolveLimits(options.limits);
    const specs = [options.self, ...(options.peers ?? [])];
    const seen = new Set<string>();
    const members = specs.map((spec, i): Member => {
      const field = i === 0 ? 'self' : `peers[${i - 1}]`;
      if (!isValidNodeId(spec.nodeId, limits)) throw invalidArgument(`${field}.nodeId`, `invalid node id ${JSON.stringify(spec.nodeId)}`);
      if (seen.has(spec.nodeId)) throw invalidArgument(`${field}.nodeId`, `duplicate node id ${spec.nodeId}`);
      seen.add(spec.nodeId);
      if (!isValidIpAddress(spec.address)) throw invalidArgument(`${field}.address`, `must be IP host:port, got ${JSON.stringify(spec.address)}`);
      const meta = checkedMeta(spec.meta ?? {}, limits, `${field}.meta`);
      return Object.freeze({ nodeId: spec.nodeId, address: spec.address, generation: 0, incarnation: 0, meta, state: 'alive' });
    });
    const [me, ...peers] = members;
    if (me === undefined) throw invalidArgument('self', 'is required');
    this.me = me;
    this.peers = peers;
    this.limits = limits;
  }

  private readonly limits: SwimLimits;

  get self(): Member {
    return this.me;
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  members(): Member[] {
    return [this.me, ...this.peers].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  updateMeta(meta: Meta): void {
    const checked = checkedMeta(meta, this.limits);
    if (sameMeta(checked, this.me.meta)) return;
    this.me = Object.freeze({ ...this.me, meta: checked, incarnation: this.me.incarnation + 1 });
  }

  on<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): () => void {
    return this.emitter.on(event, listener);
  }

  off<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): void {
    this.emitter.off(event, listener);
  }
}
