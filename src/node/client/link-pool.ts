import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import { rawRateLimiterClientConstructor } from '../api/proto.js';
import { channelCredentials } from '../transport/credentials.js';
import type { AdaptiveBatcher } from '../routing/adaptive-batcher.js';
import type { ClientOptions } from './client-options.js';
import type { NodeClient, NodeLink, PendingCall, RawStream } from './pending-call.js';

/** Links to nodes beyond the configured ones (learned owners) are bounded. */
export const MAX_LINKS = 1_024;

/** What happens on a link's stream: answers arrive, or it breaks (an error, or the node ended it). */
export interface StreamEvents {
  answered(link: NodeLink, call: RawStream, bytes: Buffer): void;
  broke(link: NodeLink, call: RawStream): void;
}

/**
 * The client's links: one per configured node, in order, and one per owner learned from
 * the ring (bounded), each with its gRPC channel and at most one AllowStream, opened when
 * first needed and, after it breaks, not before the reconnect backoff.
 */
export class LinkPool {
  /** The configured nodes, in order. */
  readonly configured: NodeLink[];
  /** Every link by address: configured nodes and learned owners. */
  private readonly byAddress = new Map<string, NodeLink>();
  /** The configured node tried first; it moves on when that node fails. */
  preferred: number;
  /** Why nodes refused this client (a bad token), when they did: the error callers get instead of UNAVAILABLE. */
  refusal: RingLimitError | undefined;

  constructor(
    private readonly options: ClientOptions,
    private readonly batcher: AdaptiveBatcher<PendingCall>,
    private readonly metadata: grpc.Metadata,
  ) {
    this.configured = options.nodes.map((address, index) => this.newLink(address, index));
    this.preferred = options.preferFirst ? 0 : Math.floor(Math.random() * this.configured.length);
  }

  private newLink(address: string, index: number): NodeLink {
    const Client = rawRateLimiterClientConstructor();
    const link: NodeLink = {
      index,
      client: new Client(address, channelCredentials(this.options.tls)) as unknown as NodeClient,
      call: undefined,
      downUntilMs: 0,
      batch: this.batcher.queue(address),
    };
    this.byAddress.set(address, link);
    return link;
  }

  /** The link to `address`: a new one for an owner not met before, while there is room. */
  linkTo(address: string): NodeLink | undefined {
    const link = this.byAddress.get(address);
    if (link !== undefined) return link;
    return this.byAddress.size < MAX_LINKS ? this.newLink(address, -1) : undefined;
  }

  /** The link a batcher queue belongs to. */
  linkOf(address: string): NodeLink {
    return this.byAddress.get(address)!;
  }

  get preferredLink(): NodeLink {
    return this.configured[this.preferred]!;
  }

  /** `link` failed: when it is the preferred node, later calls start at the next one. */
  avoid(link: NodeLink): void {
    if (link.index >= 0 && this.preferred === link.index) this.preferred = (link.index + 1) % this.configured.length;
  }

  /** The link's stream, opened now when it has none; undefined while it waits out its backoff. */
  streamOf(link: NodeLink, events: StreamEvents): RawStream | undefined {
    if (link.call !== undefined) return link.call;
    if (performance.now() < link.downUntilMs) return undefined;
    const call = link.client.allowStream(this.metadata);
    link.call = call;
    call.on('data', (bytes: Buffer) => {
      this.refusal = undefined; // a node answers: an earlier refusal no longer explains a failure
      events.answered(link, call, bytes);
    });
    const broken = (): void => events.broke(link, call);
    call.on('error', (error: grpc.ServiceError) => {
      // Not a node failure: say so when no node answers, instead of "unavailable".
      if (error.code === grpc.status.UNAUTHENTICATED) this.refusal = new RingLimitError('UNAUTHENTICATED', `${link.client.getChannel().getTarget()} refused the call: ${error.details}`);
      broken();
    });
    call.on('end', broken);
    return call;
  }

  /** Drops `call`, the link's stream, until the backoff passes; false when it was dropped already. */
  dropStream(link: NodeLink, call: RawStream): boolean {
    if (link.call !== call) return false;
    link.call = undefined;
    call.cancel();
    link.downUntilMs = performance.now() + this.options.reconnectBackoffMs;
    return true;
  }

  close(): void {
    for (const link of this.byAddress.values()) {
      link.call?.cancel();
      link.client.close();
    }
  }
}
