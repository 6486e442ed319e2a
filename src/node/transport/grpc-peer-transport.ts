import * as grpc from '@grpc/grpc-js';
import { PEER_AUTH_HEADER, PEER_CHALLENGE_HEADER, hostOfPeer, type Hello, type PeerAuth } from './peer-auth.js';
import type { FrameHandler, PeerTransport, Reply } from './peer-transport.js';
import { connectionGateOf, type ConnectionGate } from './connection-gate.js';


/** The largest message a gRPC caller or peer may send a node (its gRPC server's bound, and the peer channels'). */
export const MAX_GRPC_MESSAGE_BYTES = 32 * 1024 * 1024;
/** The peer service's one method: a bidirectional stream of raw frames. */
export const PEER_METHOD = '/ringlimit.peer.v1.Peer/Exchange';
const NODE_HEADER = 'ringlimit-node-id';
const CLUSTER_HEADER = 'ringlimit-cluster';
/** How long a peer stream may take to send its proof after the receiver's challenge. */
const PROOF_DEADLINE_MS = 5_000;
const identity = (bytes: Buffer): Buffer => bytes;

/** The peer service: one bidirectional stream of raw frames (MessagePack, see ../wire). */
export const peerServiceDefinition: grpc.ServiceDefinition = {
  exchange: {
    path: PEER_METHOD,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'exchange',
  },
};

export interface GrpcPeerTransportOptions {
  /** This node's id, sent once per stream so receivers know who is asking. */
  nodeId: string;
  /** Bytes a stream may hold not yet sent (queued before its handshake, or written and unsent) before send() refuses. */
  maxBufferedBytes: number;
  /** After a stream breaks, how long before a new one is tried. */
  reconnectBackoffMs: number;
  /** How this node dials its peers (TLS with its own certificate, or plain text). */
  credentials: grpc.ChannelCredentials;
  /** Largest frame a peer may send back on a stream this node opened (as the server side accepts). */
  maxMessageBytes: number;
  /** The cluster's name ('' for none): a stream from a node of another cluster is refused, as its gossip is dropped. */
  clusterName: string;
}

export interface PeerTransportStats {
  /** Streams refused at either end: no valid proof, not a member, or a receiver's answer that failed its check. */
  refusedStreams: number;
  /** Frames dropped because their stream was not (yet) authenticated. */
  unauthenticatedFrames: number;
}

interface Link {
  client: grpc.Client;
  call: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  downUntilMs: number;
  /** Frames sent before the stream's handshake finished, written once it has; undefined after. */
  queued: Buffer[] | undefined;
  /** Bytes queued or written and not yet sent. */
  unsentBytes: number;
}

function firstString(metadata: grpc.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : undefined;
}

/**
 * PeerTransport over @grpc/grpc-js: the server side is a service added to the node's
 * gRPC server; the client side keeps one bidi stream per peer address, reopened lazily
 * after a failure (no retry loop: the next send after the backoff reopens it).
 */
export class GrpcPeerTransport implements PeerTransport {
  readonly stats: PeerTransportStats = { refusedStreams: 0, unauthenticatedFrames: 0 };
  private readonly links = new Map<string, Link>();
  private readonly serverCalls = new Set<grpc.ServerDuplexStream<Buffer, Buffer>>();
  private frameHandler: FrameHandler = () => undefined;
  private downHandler: (address: string) => void = () => undefined;
  private closed = false;
  /** The gate in front of the server's connections, told of every stream accepted or refused (it closes a host's connections past its rate of refusals). */
  private readonly gate: ConnectionGate | undefined;

  constructor(
    server: grpc.Server,
    private readonly options: GrpcPeerTransportOptions,
    private readonly auth: PeerAuth,
  ) {
    this.gate = connectionGateOf(server);
    server.addService(peerServiceDefinition, { exchange: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.accept(call) });
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandler = handler;
  }

  onPeerDown(handler: (address: string) => void): void {
    this.downHandler = handler;
  }

  send(address: string, frame: Uint8Array): boolean {
    if (this.closed) return false;
    const link = this.linkTo(address);
    if (link.call === undefined || link.unsentBytes + frame.byteLength > this.options.maxBufferedBytes) return false;
    const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    if (link.queued !== undefined) {
      link.queued.push(bytes);
      link.unsentBytes += bytes.length;
    } else {
      this.write(link, link.call, bytes);
    }
    return true;
  }

  disconnect(address: string): void {
    const link = this.links.get(address);
    if (link === undefined) return;
    this.links.delete(address);
    link.call?.cancel();
    link.client.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const address of [...this.links.keys()]) this.disconnect(address);
    for (const call of this.serverCalls) call.end();
    this.serverCalls.clear();
  }

  private accept(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    const from = firstString(call.metadata, NODE_HEADER) ?? '';
    const verdict = this.closed
      ? { ok: false as const, reason: 'closing' }
      : (firstString(call.metadata, CLUSTER_HEADER) ?? '') !== this.options.clusterName
        ? { ok: false as const, reason: 'a node of another cluster' }
        : this.auth.accept(from, firstString(call.metadata, PEER_AUTH_HEADER), hostOfPeer(call.getPeer()));
    if (!verdict.ok) {
      // Refused before reading anything: its frames are never handed on; past its host's rate of refusals, its connection is closed.
      this.stats.refusedStreams++;
      this.gate?.strike(call.getPeer());
      call.on('data', () => void this.stats.unauthenticatedFrames++);
      call.on('error', () => undefined);
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `peer stream refused: ${verdict.reason}` });
      return;
    }
    const answer = new grpc.Metadata();
    answer.set(NODE_HEADER, this.options.nodeId);
    if (verdict.answer !== undefined) answer.set(PEER_AUTH_HEADER, verdict.answer);
    const challenge = verdict.challenge;
    if (challenge !== undefined) answer.set(PEER_CHALLENGE_HEADER, challenge.nonce);
    call.sendMetadata(answer);
    this.gate?.trust(call.getPeer());
    this.serverCalls.add(call);
    const reply: Reply = (frame) => {
      if (!call.cancelled && call.writable) call.write(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
    };
    // With a cluster key, the first frame is the opener's proof over our challenge; nothing before it is handed on.
    let state: 'proving' | 'open' | 'refused' = challenge === undefined ? 'open' : 'proving';
    const refuse = (why: string): void => {
      state = 'refused';
      this.stats.refusedStreams++;
      this.gate?.strike(call.getPeer());
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `peer stream refused: ${why}` });
    };
    // A stream that never proves itself would hold its place forever.
    const deadline = state === 'proving' ? setTimeout(() => state === 'proving' && refuse('no proof within the deadline'), PROOF_DEADLINE_MS) : undefined;
    deadline?.unref();
    call.on('data', (frame: Buffer) => {
      if (state === 'open') this.frameHandler(frame, reply, from);
      else if (state === 'proving' && challenge !== undefined && this.auth.verifyProof(challenge, frame)) {
        state = 'open';
        clearTimeout(deadline);
      } else {
        this.stats.unauthenticatedFrames++;
        if (state === 'proving') refuse('its first frame is not a proof over this node’s challenge');
      }
    });
    const done = () => {
      clearTimeout(deadline);
      this.serverCalls.delete(call);
      if (call.writable) call.end();
    };
    call.on('end', done);
    call.on('error', done);
  }

  private linkTo(address: string): Link {
    let link = this.links.get(address);
    if (link === undefined) {
      const client = new grpc.Client(address, this.options.credentials, {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
        'grpc.max_receive_message_length': this.options.maxMessageBytes,
      });
      link = { client, call: undefined, downUntilMs: 0, queued: undefined, unsentBytes: 0 };
      this.links.set(address, link);
    }
    if (link.call === undefined && performance.now() >= link.downUntilMs) this.open(address, link);
    return link;
  }

  private write(link: Link, call: grpc.ClientDuplexStream<Buffer, Buffer>, bytes: Buffer): void {
    link.unsentBytes += bytes.length;
    call.write(bytes, () => {
      if (link.call === call) link.unsentBytes -= bytes.length;
    });
  }

  /** Opens the stream of `link` (lazily, on the first send after a backoff) and runs its handshake. */
  private open(address: string, link: Link): void {
    const metadata = new grpc.Metadata();
    metadata.set(NODE_HEADER, this.options.nodeId);
    if (this.options.clusterName !== '') metadata.set(CLUSTER_HEADER, this.options.clusterName);
    const hello: Hello = this.auth.hello(address);
    if (hello.header !== undefined) metadata.set(PEER_AUTH_HEADER, hello.header);
    const call = link.client.makeBidiStreamRequest(PEER_METHOD, identity, identity, metadata, {});
    link.call = call;
    link.unsentBytes = 0;
    // With a cluster key, frames wait for the handshake, and nothing the receiver sends counts until its answer proves it holds the key too.
    link.queued = this.auth.keyed ? [] : undefined;
    let verified = !this.auth.keyed;
    // Who answered, once its answer checked out: its frames are judged as that member's, like an opener's on our server side.
    let answerer = '';
    const reply: Reply = (frame) => {
      if (link.call === call && verified && call.writable) this.write(link, call, Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
    };
    call.on('metadata', (answer: grpc.Metadata) => {
      if (answerer !== '' || link.call !== call) return;
      const serverId = firstString(answer, NODE_HEADER);
      const proof = this.auth.answerChallenge(hello, firstString(answer, PEER_AUTH_HEADER), serverId, firstString(answer, PEER_CHALLENGE_HEADER), hostOfPeer(address));
      if (proof === undefined || serverId === undefined) {
        this.stats.refusedStreams++;
        verified = false;
        call.cancel();
        return;
      }
      answerer = serverId;
      if (!this.auth.keyed) return;
      verified = true;
      const queued = link.queued ?? [];
      link.queued = undefined;
      link.unsentBytes = 0;
      this.write(link, call, proof);
      for (const frame of queued) this.write(link, call, frame);
    });
    call.on('data', (frame: Buffer) => {
      if (answerer !== '') this.frameHandler(frame, reply, answerer);
      else this.stats.unauthenticatedFrames++;
    });
    const broken = () => {
      if (link.call !== call) return;
      link.call = undefined;
      link.queued = undefined;
      link.unsentBytes = 0;
      link.downUntilMs = performance.now() + this.options.reconnectBackoffMs;
      if (!this.closed) this.downHandler(address);
    };
    call.on('error', broken);
    call.on('end', broken);
    call.on('status', broken);
  }
}
