import { afterAll, describe, expect, it } from 'vitest';
import { ownersOfUsers, victimOf } from '../../src/cli/demo-cluster.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll, waitFor } from '../node/helpers.js';

const KEYS = ['free-user', 'pro-user', 'partner'];

describe('npm run demo: the node it kills', () => {
  let nodes: RingLimitNode[] = [];
  afterAll(() => stopAll(nodes));

  it("is the owner of the keys it shows, as the ring places them: the demo's ring view agrees with every node's ownerOf, before the kill and for the replicas after it", async () => {
    nodes = await startCluster(3, {}, (i) => ({ nodeId: `n${i + 1}` }));
    await waitFor(() => nodes.every((n) => n.owners().length === 3), 20_000, 'three owners in every view');
    const owners = ownersOfUsers(nodes[0]!.owners(), KEYS);
    for (const node of nodes) for (const key of KEYS) expect(owners.get(key), `${key} at ${node.nodeId}`).toBe(node.ownerOf(key, 'api'));
    const victim = victimOf(owners, ['n1', 'n2', 'n3']);
    const owned = KEYS.filter((k) => owners.get(k) === victim);
    expect(owned.length).toBeGreaterThanOrEqual(1);
    for (const id of ['n1', 'n2', 'n3']) expect(KEYS.filter((k) => owners.get(k) === id).length).toBeLessThanOrEqual(owned.length);

    // Without the victim, the ring gives each of its keys to the node that takes over (its replica).
    const replicas = ownersOfUsers(nodes[0]!.owners().filter((id) => id !== victim), owned);
    const survivors = nodes.filter((n) => n.nodeId !== victim);
    await nodes.find((n) => n.nodeId === victim)!.stop({ graceful: true });
    await waitFor(() => survivors.every((n) => n.owners().length === 2), 20_000, 'two owners after the stop');
    for (const node of survivors) for (const key of owned) expect(node.ownerOf(key, 'api')).toBe(replicas.get(key));
  }, 60_000);
});
