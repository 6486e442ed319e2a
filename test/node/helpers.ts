import * as grpc from '@grpc/grpc-js';
import { PEER_METHOD } from '../../src/node/transport/grpc-peer-transport.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import type { NodeOptionsInput } from '../../src/node/options.js';
import { META_HANDED } from '../../src/node/routing/cluster-view.js';
import { versionOf } from '../../src/node/routing/ring-keys.js';
import { Ring } from '../../src/ring/index.js';

let clusters = 0;

/**
 * Starts n real nodes on 127.0.0.1 (free ports), joined by gossip, and waits until every
 * node sees all n as owners. Each cluster gets a name of its own, so clusters of test files
 * running at once never merge — a node may bind a port another file's node just left while
 * that file's cluster still probes it (they would merge: all are named n0, n1, …).
 */
export async function startCluster(n: number, options: NodeOptionsInput = {}, perNode: (i: number) => NodeOptionsInput = () => ({})): Promise<RingLimitNode[]> {
  const nodes: RingLimitNode[] = [];
  const base: NodeOptionsInput = { gossipPreset: 'test', port: 0, gossipPort: 0, clusterName: `t${process.pid}-${++clusters}`, ...options };
  try {
    const first = await createNode({ nodeId: 'n0', ...base, ...perNode(0) });
    nodes.push(first);
    for (let i = 1; i < n; i++) {
      nodes.push(await createNode({ nodeId: `n${i}`, join: [first.gossipAddress!], ...base, ...perNode(i) }));
    }
    await waitFor(() => nodes.every((node) => node.owners().length === n), 10_000, 'cluster to converge');
    // …and every member announced its (empty) push for that ring: clients are told the new owners from then on.
    await waitFor(() => allAnnounced(nodes), 10_000, 'every member to announce its handoff');
    return nodes;
  } catch (error) {
    await stopAll(nodes);
    throw error;
  }
}

/**
 * Whether every node sees every member announce its handoff for the ring in force: one and
 * the same ring, which every node has (all announcing an older ring, as happens while the
 * last change's pushes are under way, does not count).
 */
export function allAnnounced(nodes: RingLimitNode[]): boolean {
  const versions = new Set<string>();
  for (const node of nodes) {
    const members = node.members();
    if (members.length !== nodes.length) return false;
    for (const m of members) versions.add(m.meta[META_HANDED] ?? '');
    versions.add(versionOf(new Ring(node.owners().map((nodeId) => ({ nodeId })))));
  }
  return versions.size === 1;
}

/**
 * A condition: every node's last snapshot holds its store as it is — a check made after this
 * call found nothing changed since the last write began (a write ending now may have begun
 * before the last decision, so a count of writes would not say it).
 */
export function snapshotsCurrent(nodes: RingLimitNode[]): () => boolean {
  const since = nodes.map((n) => n.stats().snapshot.skipped);
  return () => nodes.every((n, i) => n.stats().snapshot.skipped > since[i]!);
}

export async function stopAll(nodes: RingLimitNode[], graceful = false): Promise<void> {
  await Promise.all(nodes.map((node) => node.stop({ graceful }).catch(() => undefined)));
}

export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const identity = (b: Buffer): Buffer => b;

/**
 * A raw peer stream to `target` that says it comes from member `asNodeId`, as a buggy or
 * hostile member would (without a cluster key, any process on a member's host can).
 * `headers` replaces the defaults, e.g. to pose as a stranger or to send a proof.
 */
export function rawPeerStream(target: RingLimitNode, asNodeId: string, headers?: Record<string, string>): { stream: grpc.ClientDuplexStream<Buffer, Buffer>; close: () => void } {
  const peer = new grpc.Client(target.grpcAddress!, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  // As a node of the target's cluster (its name), unless the headers say otherwise.
  const cluster = target.options.clusterName === '' ? {} : { 'ringlimit-cluster': target.options.clusterName };
  for (const [name, value] of Object.entries({ ...cluster, ...(headers ?? { 'ringlimit-node-id': asNodeId }) })) metadata.set(name, value);
  const stream = peer.makeBidiStreamRequest(PEER_METHOD, identity, identity, metadata);
  return {
    stream,
    close: () => {
      stream.end();
      peer.close();
    },
  };
}

/**
 * One unary call to `node`'s gRPC port through a client of `Ctor` (kept in `clients` for the
 * test to close), with `authorization: Bearer <token>` when a token is given. Never rejects:
 * it resolves with the error or the response.
 */
export function unaryCall<Res>(
  clients: grpc.Client[],
  Ctor: grpc.ServiceClientConstructor,
  node: RingLimitNode,
  method: string,
  request: object,
  token?: string,
): Promise<{ error: grpc.ServiceError | null; response: Res | undefined }> {
  const client = new Ctor(node.grpcAddress!, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<string, (req: object, metadata: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void>;
  clients.push(client);
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => client[method]!(request, metadata, (error, response) => resolve({ error, response })));
}
