import { afterEach, describe, expect, it } from 'vitest';
import { RingLimitClient } from '../../src/node/client/client.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { ownersDigest } from '../../src/node/api/owners-digest.js';
import { startCluster, stopAll, waitFor } from './helpers.js';
import { Metadata } from '@grpc/grpc-js';
import { OwnerRing } from '../../src/node/client/owner-ring.js';
import { resolveClientOptions } from '../../src/node/client/client-options.js';
import type { NodeLink } from '../../src/node/client/pending-call.js';

describe('a ring-aware client follows the ring from the answers it gets', () => {
  let nodes: RingLimitNode[] = [];
  let client: RingLimitClient | undefined;
  afterEach(async () => {
    client?.close();
    await stopAll(nodes);
    nodes = [];
  });

  it('learns a member that joined from the digest in its AllowStream answers, long before its next ringRefreshMs', async () => {
    nodes = await startCluster(2);
    // One Members call at start, the next in 10 minutes: only the answers can tell it sooner.
    client = new RingLimitClient({ nodes: [nodes[0]!.grpcAddress!], ringRefreshMs: 600_000 });
    await waitFor(() => client!.ownerIds().length === 2, 10_000, 'the client to learn the two owners');
    nodes.push(await createNode({ nodeId: 'n2', gossipPreset: 'test', port: 0, gossipPort: 0, join: [nodes[0]!.gossipAddress!], clusterName: nodes[0]!.options.clusterName }));
    // Calls keep coming (answers carry the digest); bounded: 20 s.
    const deadline = Date.now() + 20_000;
    for (let i = 0; client.ownerIds().length < 3 && Date.now() < deadline; i++) await client.allow({ key: `follow-${i}`, action: 'a', limit: 100, windowMs: 60_000 });
    expect([...client.ownerIds()].sort()).toEqual(['n0', 'n1', 'n2']);
  }, 60_000);

  it('the digest is the same for the same owners in any order, and differs when one changes', () => {
    const a = [
      { nodeId: 'n0', address: '127.0.0.1:1' },
      { nodeId: 'n1', address: '127.0.0.1:2' },
    ];
    expect(ownersDigest(a)).toBe(ownersDigest([...a].reverse()));
    expect(ownersDigest(a)).not.toBe(ownersDigest([a[0]!]));
    expect(ownersDigest(a)).not.toBe(ownersDigest([a[0]!, { nodeId: 'n1', address: '127.0.0.1:3' }]));
    expect(ownersDigest(a)).not.toBe(0);
  });
});

describe('which node the client asks for the owners', () => {
  const PLACEMENT_V2 = 'ringlimit-ring-v2';
  /** A link whose node answers Members with `owners` (digest `ring`), counting the asks. */
  function fakeLink(index: number, answer: () => { owners: { nodeId: string; address: string }[]; ring: number }) {
    const link = {
      index,
      asks: 0,
      call: undefined,
      downUntilMs: 0,
      batch: undefined as never,
      client: {
        members: (_req: unknown, _md: unknown, _opts: unknown, done: (error: Error | null, response?: unknown) => void) => {
          link.asks++;
          const { owners, ring } = answer();
          queueMicrotask(() => done(null, { owners, ring, placement: PLACEMENT_V2 }));
        },
      },
    };
    return link;
  }
  const old = [
    { nodeId: 'n0', address: '127.0.0.1:1' },
    { nodeId: 'n1', address: '127.0.0.1:2' },
  ];
  const grown = [...old, { nodeId: 'n2', address: '127.0.0.1:3' }];

  it('a digest it has not asked about is asked of the node that named it, at once, even right after another ask; a lagging node naming the old ring waits for the gap', async () => {
    // The preferred node (n0) still names the old ring; n1 already names the new one.
    const preferred = fakeLink(0, () => ({ owners: old, ring: ownersDigest(old) }));
    const ahead = fakeLink(1, () => ({ owners: grown, ring: ownersDigest(grown) }));
    const pool = { preferredLink: preferred, linkTo: () => undefined };
    const ring = new OwnerRing(resolveClientOptions({ nodes: [old[0]!.address, old[1]!.address], ringRefreshMs: 600_000 }), pool as never, new Metadata());
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(preferred.asks).toBe(1);
    expect(ring.ownerIds().length).toBe(2);
    // n1's answers carry the new digest: asked of n1 now, not after SOON_REFRESH_GAP_MS (250 ms).
    ring.seen(ownersDigest(grown), ahead as unknown as NodeLink);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(ahead.asks).toBe(1);
    expect([...ring.ownerIds()].sort()).toEqual(['n0', 'n1', 'n2']);
    // The same digest again changes nothing; the old one (the preferred node, behind) is not
    // asked out of turn — only after the gap, when nodes still disagree.
    await new Promise((resolve) => setTimeout(resolve, 40));
    ring.seen(ownersDigest(grown), ahead as unknown as NodeLink);
    ring.seen(ownersDigest(old), preferred as unknown as NodeLink);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(ahead.asks).toBe(1);
    expect(preferred.asks).toBe(1);
    expect(ring.ownerIds().length).toBe(3);
    ring.close();
  });
});
