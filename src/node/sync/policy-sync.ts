import type { Membership } from '../../gossip/index.js';
import type { Policies } from '../../limiter/policies.js';
import { canonicalOf, loadPolicyText } from './policy-loader.js';
import { policyDigest } from './policy-digest.js';
import { policyBoundsDefaults, type PolicyBounds } from './policy-parse.js';
import { META_GRPC } from '../routing/cluster-view.js';
import { WakeTimer } from '../../common/wake-timer.js';
import type { PeerTransport, Reply } from '../transport/peer-transport.js';
import { encodeFrame, frameLimits } from '../wire/codec.js';
import { RingLimitError } from '../../common/errors.js';
import { FrameType } from '../wire/frames.js';

/** Gossip metadata key: the policy document a node holds, as "<version>.<digest>". */
export const META_POLICY = 'policy';

/** How often a wanted document is asked for again while it has not come. */
const PULL_RETRY_MS = 250;

/** One version of the policies (a wall-clock time in ms: when it was made, or its file's modification time; 0: given at start): the document's canonical text, its digest, and the compiled form (undefined: none). */
export interface PolicyVersion {
  version: number;
  digest: string;
  text: string;
  policies: Policies | undefined;
}

export { policyDigest };

export function policyVersionOf(policies: Policies | undefined, version: number): PolicyVersion {
  // A loaded document comes with its canonical text and digest (made off the event loop); others are stringified here.
  const made = policies === undefined ? undefined : canonicalOf(policies);
  if (made !== undefined) return { version, digest: made.digest, text: made.text, policies };
  const text = JSON.stringify(policies?.document ?? null);
  return { version, digest: policyDigest(text), text, policies };
}

/** Whether (version, digest) is newer than `than`: the higher version, then the larger digest (every node picks the same). */
function newer(version: number, digest: string, than: { version: number; digest: string }): boolean {
  return version > than.version || (version === than.version && digest > than.digest);
}

function parseMeta(value: string | undefined): { version: number; digest: string } | undefined {
  const match = value === undefined ? null : /^(\d{1,15})\.([0-9a-f]{16})$/.exec(value);
  return match === null ? undefined : { version: Number(match[1]), digest: match[2]! };
}

export interface PolicySyncComponents {
  membership: Membership;
  transport: PeerTransport;
  /** Puts a version's policies in force on this node. */
  apply: (policies: Policies | undefined) => void;
  /** A document that came from a peer and failed its checks. */
  warn: (message: string) => void;
  /** Wall-clock ms: a change's version is the time it was made (or one past the newest seen). */
  now: () => number;
  /** Bounds on a document from a peer (policyMaxBytes, policyMaxUsers); default policyBoundsDefaults. */
  bounds?: PolicyBounds;
}

export interface PolicySyncStats {
  version: number;
  digest: string;
  /** Versions taken from peers, documents pushed to peers, pulls sent, documents refused (bad digest or document). */
  adopted: number;
  pushed: number;
  pulls: number;
  refused: number;
}

/**
 * One policy document cluster-wide, the newest winning. A change made on a node (its
 * embedded API, its watched file, the admin RPC) gets a version past every one seen, is
 * put in force there, advertised in its gossip metadata, and pushed over the authenticated
 * peer streams to every member. A node that sees a newer version advertised — it missed the
 * push, or joined later — pulls the document from that member. Documents travel only over
 * gRPC (gossip carries the 26-byte version), are checked against their digest and
 * validated before they replace the ones in force.
 */
export class PolicySync {
  private held: PolicyVersion;
  /** The newest version advertised by a member, while this node does not hold it. */
  private wanted: { version: number; digest: string; address: string } | undefined;
  private lastPullMs = -Infinity;
  private nextId = 1;
  private readonly counters = { adopted: 0, pushed: 0, pulls: 0, refused: 0 };
  private readonly retry: WakeTimer;
  /** Digests of documents from peers being loaded now. */
  private readonly loading = new Set<string>();
  private closed = false;
  /** The digest of a document too large to send that a warning was given for. */
  private warnedTooLarge = '';

  constructor(
    private readonly components: PolicySyncComponents,
    initial: PolicyVersion,
  ) {
    this.held = initial;
    this.retry = new WakeTimer(() => this.check(), PULL_RETRY_MS);
  }

  get stats(): PolicySyncStats {
    return { version: this.held.version, digest: this.held.digest, ...this.counters };
  }

  /** The version in force here. */
  get current(): PolicyVersion {
    return this.held;
  }

  /** This node's gossip metadata entry. */
  get metaValue(): string {
    return `${this.held.version}.${this.held.digest}`;
  }

  /**
   * A change made here: versioned by the time it was made (or one past the newest version
   * seen, if that is later), put in force, advertised and pushed. Versions are times, so the
   * newest change wins — also over a node restarted with an older file.
   */
  change(policies: Policies | undefined): PolicyVersion {
    let version = this.held.version;
    for (const m of this.components.membership.members()) version = Math.max(version, parseMeta(m.meta[META_POLICY])?.version ?? 0);
    const next = policyVersionOf(policies, Math.max(Math.round(this.components.now()), version + 1));
    if (next.text.length > frameLimits.maxPolicyTextBytes) {
      throw new RingLimitError('INVALID_ARGUMENT', `policies: the document is ${next.text.length} bytes as JSON; a cluster passes on at most ${frameLimits.maxPolicyTextBytes} (give a larger one to every node by file)`, 'policies');
    }
    this.adopt(next);
    const frame = encodeFrame({ type: FrameType.PolicyDoc, id: this.nextId++, version: next.version, digest: next.digest, text: next.text });
    const self = this.components.membership.self.nodeId;
    for (const m of this.components.membership.members()) {
      const address = m.meta[META_GRPC];
      if (m.nodeId !== self && address !== undefined && this.components.transport.send(address, frame)) this.counters.pushed++;
    }
    return next;
  }

  /** Membership changed (a member joined, or its metadata changed): is there a newer version to fetch? */
  check(): boolean {
    let best: { version: number; digest: string; address: string } | undefined;
    for (const m of this.components.membership.members()) {
      const advertised = parseMeta(m.meta[META_POLICY]);
      const address = m.meta[META_GRPC];
      if (advertised === undefined || address === undefined || !newer(advertised.version, advertised.digest, best ?? this.held)) continue;
      best = { ...advertised, address };
    }
    if (best === undefined) {
      this.wanted = undefined;
      return false;
    }
    if (best.digest === this.held.digest) {
      // The same document under a higher version (several nodes changed to it): no fetch.
      this.adopt({ ...this.held, version: best.version });
      this.wanted = undefined;
      return false;
    }
    const now = performance.now();
    if (this.wanted?.digest !== best.digest || now - this.lastPullMs >= PULL_RETRY_MS) {
      this.wanted = best;
      this.lastPullMs = now;
      if (this.components.transport.send(best.address, encodeFrame({ type: FrameType.PolicyPull, id: this.nextId++, digest: best.digest }))) this.counters.pulls++;
    }
    this.retry.wake();
    return true;
  }

  answerPull(id: number, digest: string, reply: Reply): void {
    if (digest !== this.held.digest) return;
    if (this.held.text.length > frameLimits.maxPolicyTextBytes) {
      // A document given by file may be larger than a peer frame carries: it is not sent (the receiver would refuse the frame); said once.
      if (this.warnedTooLarge !== digest) {
        this.warnedTooLarge = digest;
        this.components.warn(`policies: the document in force (version ${this.held.version}) is ${this.held.text.length} bytes as JSON, more than a peer frame carries (${frameLimits.maxPolicyTextBytes}); members that want it must be given it by file`);
      }
      return;
    }
    reply(encodeFrame({ type: FrameType.PolicyDoc, id, version: this.held.version, digest, text: this.held.text }));
  }

  /**
   * A document from a member (pushed, or answering our pull): taken if newer and sound. It
   * is parsed and compiled off the event loop (policy-loader.ts), one at a time: a document
   * already being loaded is not loaded again, and one that lost to a newer version while it
   * loaded is dropped.
   */
  receive(version: number, digest: string, text: string, fromNodeId: string): void {
    if (!newer(version, digest, this.held) || this.loading.has(digest)) return;
    if (policyDigest(text) !== digest) {
      this.refuse(`policies from ${fromNodeId || 'a peer'}: the document does not match its digest`);
      return;
    }
    const source = `policies from ${fromNodeId || 'a peer'} (version ${version})`;
    if (text === 'null') return this.take(version, digest, text, undefined);
    this.loading.add(digest);
    loadPolicyText(text, source, this.components.bounds ?? policyBoundsDefaults).then(
      (loaded) => {
        this.loading.delete(digest);
        if (!this.closed && newer(version, digest, this.held)) this.take(version, digest, text, loaded.policies);
      },
      (error: unknown) => {
        this.loading.delete(digest);
        if (!this.closed) this.refuse(`refused: ${(error as Error).message}`);
      },
    );
  }

  private take(version: number, digest: string, text: string, policies: Policies | undefined): void {
    this.adopt({ version, digest, text, policies });
    this.counters.adopted++;
    if (this.wanted !== undefined && !newer(this.wanted.version, this.wanted.digest, this.held)) this.wanted = undefined;
  }

  close(): void {
    this.closed = true;
    this.retry.close();
  }

  private adopt(next: PolicyVersion): void {
    const changed = next.digest !== this.held.digest;
    this.held = next;
    if (changed) this.components.apply(next.policies);
    const membership = this.components.membership;
    membership.updateMeta({ ...membership.self.meta, [META_POLICY]: this.metaValue });
  }

  private refuse(message: string): void {
    this.counters.refused++;
    this.components.warn(message);
  }
}
