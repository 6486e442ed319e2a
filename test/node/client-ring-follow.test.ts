import { afterEach, describe, expect, it } from 'vitest';
import { RingLimitClient } from '../../src/node/client/client.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { ownersDigest } from '../../src/node/api/owners-digest.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

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
