import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/gossip/index.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { GrpcPeerTransport, peerServiceDefinition } from '../../src/node/transport/grpc-peer-transport.js';
import { PeerAuth } from '../../src/node/transport/peer-auth.js';
import { decodeFrame } from '../../src/node/wire/codec.js';
import { FrameType } from '../../src/node/wire/frames.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { rawPeerStream, startCluster, stopAll, waitFor } from './helpers.js';

const KEY = Buffer.alloc(32, 7).toString('base64');
const OTHER_KEY = Buffer.alloc(32, 9).toString('base64');
const HOUR = 3_600_000;
const request = (key: string) => ({ key, action: 'api', limit: 5, windowMs: HOUR });

/** What a raw peer stream got: the frames that came back, and how it ended. */
interface Outcome {
  frames: Uint8Array[];
  code: number | undefined;
}

/**
 * Writes `frames` (MessagePack-encoded, or as they are when `raw`) on a raw peer stream with
 * `headers`; collects what comes back until the stream fails, until `expectFrames` frames came, or until `settled()` (at most 5 s).
 */
async function speak(target: RingLimitNode, headers: Record<string, string>, frames: unknown[], expectFrames = 0, settled = () => false, raw = false): Promise<Outcome> {
  const { stream, close } = rawPeerStream(target, '', headers);
  const outcome: Outcome = { frames: [], code: undefined };
  stream.on('data', (bytes: Buffer) => outcome.frames.push(bytes));
  stream.on('error', (error: grpc.ServiceError) => (outcome.code = error.code));
  for (const frame of frames) stream.write(raw ? (frame as Buffer) : encodeMsgpack(frame));
  const done = () => outcome.code !== undefined || (expectFrames > 0 && outcome.frames.length >= expectFrames) || settled();
  for (let i = 0; i < 250 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
  close();
  return outcome;
}

/** Handoff of (api, key) with a token count that would lock the key out for centuries. */
const lockOut = (key: string) => [1, FrameType.Handoff, 9, [['api', key, 0, -1e21, 0, 0, 0]]];
/** Replicate of (api, key) with a fresh, full bucket. */
const resetReplica = (key: string) => [1, FrameType.Replicate, 9, [['api', key, 0, 5, 0, 0, 0]]];
/** A Forward that says it was relayed once already: decided where it lands. */
const forwardHop1 = (key: string) => [1, FrameType.Forward, 9, [[77, 'api', key, 5, HOUR, 1, 1, 0, 0, 1, -1]]];
const pull = (key: string) => [1, FrameType.Pull, 9, 'api', key];

function keyOwnedBy(nodes: RingLimitNode[], owner: string): string {
  for (let i = 0; i < 10_000; i++) if (nodes[0]!.ownerOf(`victim-${i}`, 'api') === owner) return `victim-${i}`;
  throw new Error('no key found');
}

async function allowedOf(node: RingLimitNode, key: string, calls: number): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < calls; i++) if ((await node.allow(request(key))).allowed) allowed++;
  return allowed;
}

describe('peer authentication with a cluster key', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('a stranger without the key is refused before any frame: no lock-out, no reset replica, no second limit, no state leaked', async () => {
    nodes = await startCluster(3, { gossipKeys: [KEY], replicas: 1 });
    const [n0, n1, n2] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    const victim = keyOwnedBy(nodes, 'n0');
    expect(await allowedOf(n0, victim, 5)).toBe(5); // used up at its owner, replicated to the next node
    const before = nodes.map((n) => n.stats().peerAuth.refusedStreams);

    const posingAsMember = { 'ringlimit-node-id': 'n1' };
    const outcomes = [
      await speak(n0, posingAsMember, [lockOut('fresh-key'), lockOut(victim)]),
      await speak(n1, posingAsMember, [resetReplica(victim)]),
      await speak(n2, { 'ringlimit-node-id': 'n1' }, [forwardHop1(victim), pull(victim)]),
      await speak(n0, { 'ringlimit-node-id': 'n2' }, [pull(victim)]),
      await speak(n0, { 'ringlimit-node-id': 'stranger' }, [lockOut(victim)]),
    ];
    for (const o of outcomes) {
      expect(o.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(o.frames).toEqual([]); // no ForwardReply, no PullReply, no Ack
    }
    expect(nodes.map((n, i) => n.stats().peerAuth.refusedStreams - before[i]!)).toEqual([3, 1, 1]);
    expect((await n0.allow(request('fresh-key'))).allowed).toBe(true);
    expect(await allowedOf(n0, victim, 3)).toBe(0);
    expect(await allowedOf(n2, victim, 3)).toBe(0);
  });

  it('a hello made with another key is refused; a stream must answer the receiver’s challenge; nothing captured from one stream opens another', async () => {
    nodes = await startCluster(2, { gossipKeys: [KEY] });
    const [n0] = nodes as [RingLimitNode];
    const victim = keyOwnedBy(nodes, 'n0');
    const authWith = (key: string) => new PeerAuth({ keyring: new Keyring([key]), isMember: () => false }, { selfId: 'n1' });

    const wrongKey = await speak(n0, { 'ringlimit-node-id': 'n1', 'ringlimit-peer-auth': authWith(OTHER_KEY).hello(n0.grpcAddress!).header! }, [pull(victim)]);
    expect(wrongKey.code).toBe(grpc.status.UNAUTHENTICATED);

    // A valid hello (captured, or made with the key) whose stream does not prove the key over the challenge: refused, nothing answered.
    const auth = authWith(KEY);
    const hello = auth.hello(n0.grpcAddress!);
    const unproven = await speak(n0, { 'ringlimit-node-id': 'n1', 'ringlimit-peer-auth': hello.header! }, [pull(victim)]);
    expect(unproven.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(unproven.frames).toEqual([]);

    // The whole handshake, as a member does it: the Pull is answered.
    const { stream, close } = rawPeerStream(n0, '', { 'ringlimit-node-id': 'n1', 'ringlimit-peer-auth': hello.header! });
    const frames: Buffer[] = [];
    let proof: Buffer | undefined;
    stream.on('data', (bytes: Buffer) => frames.push(bytes));
    stream.on('error', () => undefined);
    stream.on('metadata', (answer: grpc.Metadata) => {
      const header = (name: string) => answer.get(name)[0] as string | undefined;
      proof = auth.answerChallenge(hello, header('ringlimit-peer-auth'), header('ringlimit-node-id'), header('ringlimit-peer-challenge'), '127.0.0.1');
      if (proof === undefined) return;
      stream.write(proof);
      stream.write(encodeMsgpack(pull(victim)));
    });
    await waitFor(() => frames.length >= 1, 5_000, 'the PullReply');
    close();
    expect(decodeFrame(frames[0]!)?.type).toBe(FrameType.PullReply);

    // Replaying that stream's hello and proof: the receiver chose a new challenge, so the proof does not verify.
    const replayed = await speak(n0, { 'ringlimit-node-id': 'n1', 'ringlimit-peer-auth': hello.header! }, [proof, pull(victim)].map((f) => (Buffer.isBuffer(f) ? f : encodeMsgpack(f))), 0, () => false, true);
    expect(replayed.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(replayed.frames).toEqual([]);
    // A hello made for n1 does not verify under another node id.
    const otherId = await speak(n0, { 'ringlimit-node-id': 'n7', 'ringlimit-peer-auth': auth.hello(n0.grpcAddress!).header! }, [pull(victim)]);
    expect(otherId.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('the opener checks the answer too: frames from a receiver that cannot prove the key are dropped and counted', async () => {
    // A fake "member" that answers every stream at once with a ForwardReply and no proof.
    const server = new grpc.Server();
    server.addService(
      peerServiceDefinition,
      {
        exchange: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('error', () => undefined);
          call.write(encodeMsgpack([1, FrameType.ForwardReply, 1, [[1, 0, true, 5, 4, 1000, 0, 0]]]));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const auth = new PeerAuth({ keyring: new Keyring([KEY]), isMember: () => false }, { selfId: 'n0' });
    const transport = new GrpcPeerTransport(new grpc.Server(), { nodeId: 'n0', maxBufferedBytes: 1 << 20, reconnectBackoffMs: 50, credentials: grpc.credentials.createInsecure(), maxMessageBytes: 1 << 20, clusterName: '' }, auth);
    let handed = 0;
    transport.onFrame(() => handed++);
    try {
      expect(transport.send(`127.0.0.1:${port}`, encodeMsgpack([1, FrameType.Pull, 1, 'api', 'k']))).toBe(true);
      await waitFor(() => transport.stats.unauthenticatedFrames + transport.stats.refusedStreams >= 1, 5_000, 'the fake answer to be refused');
      await new Promise((r) => setTimeout(r, 200));
      expect(handed).toBe(0);
    } finally {
      await transport.close();
      server.forceShutdown();
    }
  });
});

describe('frames on the answer side of a stream a node opened', () => {
  /** n1 answers every frame with an Ack on the same stream; n0 opens the stream and notes who it hears frames from. */
  async function exchange(keyring: Keyring | undefined, n0SeesMember: boolean): Promise<{ froms: string[]; refused: number }> {
    const server = new grpc.Server();
    const n1Auth = new PeerAuth({ keyring, isMember: () => true }, { selfId: 'n1' });
    const n1 = new GrpcPeerTransport(server, { nodeId: 'n1', maxBufferedBytes: 1 << 20, reconnectBackoffMs: 50, credentials: grpc.credentials.createInsecure(), maxMessageBytes: 1 << 20, clusterName: '' }, n1Auth);
    n1.onFrame((_frame, reply) => reply(encodeMsgpack([1, FrameType.Ack, 1])));
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    n1Auth.selfAddress = `127.0.0.1:${port}`;
    const n0Auth = new PeerAuth({ keyring, isMember: (id, ip) => n0SeesMember && id === 'n1' && ip === '127.0.0.1' }, { selfId: 'n0' });
    const n0 = new GrpcPeerTransport(new grpc.Server(), { nodeId: 'n0', maxBufferedBytes: 1 << 20, reconnectBackoffMs: 50, credentials: grpc.credentials.createInsecure(), maxMessageBytes: 1 << 20, clusterName: '' }, n0Auth);
    const froms: string[] = [];
    n0.onFrame((_frame, _reply, from) => froms.push(from));
    try {
      expect(n0.send(n1Auth.selfAddress, encodeMsgpack(pull('k')))).toBe(true);
      await waitFor(() => froms.length + n0.stats.refusedStreams >= 1, 5_000, 'the answer, or its refusal');
      return { froms, refused: n0.stats.refusedStreams };
    } finally {
      await n0.close();
      await n1.close();
      server.forceShutdown();
    }
  }

  it('with a cluster key, they are handed on as the proven answerer’s (its authority is judged like an opener’s)', async () => {
    expect(await exchange(new Keyring([KEY]), false)).toEqual({ froms: ['n1'], refused: 0 });
  });

  it('without a key, as the answering member’s when it advertises the host dialled; a stream answered by a non-member is refused', async () => {
    expect(await exchange(undefined, true)).toEqual({ froms: ['n1'], refused: 0 });
    const stranger = await exchange(undefined, false);
    expect(stranger.froms).toEqual([]);
    expect(stranger.refused).toBeGreaterThanOrEqual(1);
  });
});

describe('peer streams without a cluster key', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('a node id that is not a member is refused, whatever it sends (a flood of fake handed-off keys stores nothing)', async () => {
    nodes = await startCluster(2);
    const [n0] = nodes as [RingLimitNode];
    const keysBefore = n0.stats().store.keys;
    const flood = [1, FrameType.Handoff, 9, Array.from({ length: 10_000 }, (_, i) => ['api', `fake-${i}`, 0, 1, 0, 0, 0])];
    const outcome = await speak(n0, { 'ringlimit-node-id': 'intruder' }, [flood, flood, flood]);
    expect(outcome.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(n0.stats().store.keys).toBe(keysBefore);
    expect(n0.stats().peerAuth.refusedStreams).toBeGreaterThanOrEqual(1);
    const noId = await speak(n0, {}, [flood]);
    expect(noId.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(n0.stats().store.keys).toBe(keysBefore);
  });

  it('members still talk: forwarding and replication work, and nothing is refused between them', async () => {
    nodes = await startCluster(3);
    // While the cluster formed, a stream from a node not yet in another's view may have been refused (it retries).
    const before = nodes.map((n) => n.stats().peerAuth.refusedStreams);
    const key = keyOwnedBy(nodes, 'n2');
    expect(await allowedOf(nodes[0]!, key, 7)).toBe(5);
    await waitFor(() => nodes.some((n) => n.stats().replication.entriesReceived > 0), 5_000, 'replication');
    expect(nodes.map((n, i) => n.stats().peerAuth.refusedStreams - before[i]!)).toEqual([0, 0, 0]);
  });
});

describe("a member's frames are checked for authority and plausibility", () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  /** The node's view (private: the test reads whom the ring names, as the node does). */
  const viewOf = (node: RingLimitNode) =>
    (node as unknown as { parts: { role: { view: { holdersInto(a: string, k: string, out: string[]): number; judgeSender(from: string, a: string, k: string): number } } } }).parts.role.view;

  /** A key owned by n0 with its replica on n2, of which n1 held no copy on any node's current or previous ring. */
  function keyN1NeverHeld(): string {
    for (let i = 0; i < 10_000; i++) {
      const key = `held-${i}`;
      const out: string[] = [];
      viewOf(nodes[0]!).holdersInto('api', key, out);
      if (out[0] !== 'n0' || out[1] !== 'n2') continue;
      if (nodes.every((n) => n.nodeId === 'n1' || viewOf(n).judgeSender('n1', 'api', key) === 0)) return key;
    }
    throw new Error('no key found');
  }

  it('a state no algorithm could have written is refused even from a member: no lock-out', async () => {
    nodes = await startCluster(3, { replicas: 1 });
    const [n0] = nodes as [RingLimitNode];
    const key = keyOwnedBy(nodes, 'n0');
    const before = n0.stats().malformedFrames;
    const dropped = () => n0.stats().malformedFrames - before >= 2;
    const outcome = await speak(n0, { 'ringlimit-node-id': 'n1' }, [lockOut(key), [1, FrameType.Replicate, 10, [['api', key, 0, 5, 1e300, 0, 0]]]], 0, dropped);
    expect(outcome.code).toBeUndefined(); // a member's stream: accepted, the frames are not
    expect(dropped()).toBe(true);
    expect(await allowedOf(n0, key, 5)).toBe(5);
  });

  it('a Replicate or Handoff from a member that holds no copy of the key is refused and counted; GlobalState too', async () => {
    // Four nodes: with three, the previous ring had two, each holding every key.
    nodes = await startCluster(4, { replicas: 1 });
    // Entries refused while the ring formed (a holder of two rings ago re-sending) are not this test's.
    const refusedBefore = nodes.map((n) => n.stats().replication.entriesRefused);
    const handoffRefusedBefore = nodes[0]!.stats().handoff.refusedEntries;
    const key = keyN1NeverHeld();
    const [n0, , n2] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    expect(await allowedOf(n0, key, 5)).toBe(5);
    await waitFor(() => n2.store.getState('api', key) !== undefined, 5_000, 'the replica to hold the key');
    const replicaBefore = n2.store.getState('api', key);
    const fresh = (type: FrameType) => [1, type, 11, [['api', key, 0, 5, 0, 0, 0]]];
    await speak(n2, { 'ringlimit-node-id': 'n1' }, [fresh(FrameType.Replicate)], 1); // the Ack
    await speak(n0, { 'ringlimit-node-id': 'n1' }, [fresh(FrameType.Handoff)], 1);
    await speak(n2, { 'ringlimit-node-id': 'n1' }, [fresh(FrameType.GlobalState), fresh(FrameType.Replicate)], 1); // the Ack of the second
    expect(n2.stats().replication.entriesRefused - refusedBefore[2]!).toBe(2);
    expect(n0.stats().handoff.refusedEntries - handoffRefusedBefore).toBe(1);
    expect(n2.stats().hotKeys.refusedStates).toBe(1);
    expect(n2.store.getState('api', key)).toEqual(replicaBefore);
    expect(await allowedOf(n0, key, 3)).toBe(0);
    // Replication from the keys' holders still lands.
    const received = n2.stats().replication.entriesReceived;
    for (let i = 0; i < 50; i++) await n0.allow(request(`after-${i}`));
    await waitFor(() => n2.stats().replication.entriesReceived > received, 5_000, 'replication from the holders');
    expect(nodes.map((n, i) => n.stats().replication.entriesRefused - refusedBefore[i]!)).toEqual([0, 0, 2, 0]);
  });
});

describe('cluster names', () => {
  it('a node that takes over another cluster’s old gossip address does not merge with it when each cluster has its name', async () => {
    const { createNode } = await import('../../src/node/node.js');
    const a = await startCluster(3, { clusterName: 'cluster-a' });
    let b: RingLimitNode | undefined;
    try {
      const port = Number(a[2]!.gossipAddress!.split(':')[1]);
      await a[2]!.stop({ graceful: false });
      // Another cluster's node binds the freed port while cluster-a still probes it (and is also named n2).
      b = await createNode({ nodeId: 'n2', gossipPreset: 'test', port: 0, gossipPort: port, clusterName: 'cluster-b' });
      await new Promise((r) => setTimeout(r, 1_000));
      expect(b.members().map((m) => m.nodeId)).toEqual(['n2']);
      expect(a[0]!.members().map((m) => m.address)).not.toContain(b.gossipAddress);
      // Nor do its peer streams: a stream naming another cluster is refused (here: a raw stream as cluster-a's n1 to b).
      const { stream, close } = rawPeerStream(b, 'n1', { 'ringlimit-node-id': 'n1', 'ringlimit-cluster': 'cluster-a' });
      const code = await new Promise<number>((resolve) => stream.on('error', (e: grpc.ServiceError) => resolve(e.code)));
      close();
      expect(code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      await b?.stop({ graceful: false });
      await stopAll(a);
    }
  }, 30_000);
});
