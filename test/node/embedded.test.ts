import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll } from './helpers.js';

describe('embedded node', () => {
  const nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes.splice(0));
  });

  it('createNode() with no options is a single node with no sockets, deciding exactly', async () => {
    const node = await createNode();
    nodes.push(node);
    expect(node.grpcAddress).toBeUndefined();
    expect(node.gossipAddress).toBeUndefined();
    let allowed = 0;
    for (let i = 0; i < 20; i++) if ((await node.allow({ key: 'u', limit: 5, windowMs: 60_000 })).allowed) allowed++;
    expect(allowed).toBe(5);
    expect(await node.rateLimit('alice', 'upload', 2, 60)).toBe(true);
    expect(await node.allowRequest('bob', '/search', 1, 60)).toBe(true);
    expect(await node.allowRequest('bob', '/search', 1, 60)).toBe(false);
    expect(await node.allowRate('carol', 'read', 1, 2, 1.5)).toBe(true);
    await expect(node.allow({ key: '', limit: 1, windowMs: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const r = await node.acquire({ key: 'job', limit: 50, windowMs: 1000, burst: 1 }, { maxWaitMs: 1000 });
    expect(r.allowed).toBe(true);
    // The synchronous fast path shares the state of allow().
    expect(node.allowNow({ key: 'u', limit: 5, windowMs: 60_000 })?.allowed).toBe(false);
    expect(node.allowNow({ key: 'v', limit: 5, windowMs: 60_000 })?.remaining).toBe(4);
    expect(() => node.allowNow({ key: 'v', limit: 0, windowMs: 1 })).toThrow(/limit/);
  });

  it('allowNow answers for owned keys and defers the others to allow()', async () => {
    const cluster = await startCluster(2, { handoffWindowMs: 0 });
    nodes.push(...cluster);
    const [a] = cluster as [RingLimitNode];
    let mine = 0;
    let theirs = 0;
    for (let i = 0; i < 200; i++) {
      const d = a.allowNow({ key: `k${i}`, limit: 5, windowMs: 60_000 });
      if (a.ownerOf(`k${i}`) === 'n0') {
        expect(d?.allowed).toBe(true);
        mine++;
      } else {
        expect(d).toBeUndefined();
        theirs++;
      }
    }
    expect(mine).toBeGreaterThan(0);
    expect(theirs).toBeGreaterThan(0);
  }, 30_000);

  it('an option set to undefined takes its default: nodeId: process.env.HOSTNAME where it is unset gets one id, used by gossip and peer streams alike', async () => {
    const cluster = await startCluster(2);
    nodes.push(...cluster);
    const [a] = cluster as [RingLimitNode];
    const hostname: string | undefined = undefined;
    const member = await createNode({ nodeId: hostname, port: 0, gossipPort: 0, gossipPreset: 'test', clusterName: a.options.clusterName, join: [a.gossipAddress!], replicationDelayMs: undefined });
    nodes.push(member);
    expect(member.nodeId).toMatch(/^node-/);
    expect(member.options.replicationDelayMs).toBe(5);
    const ids = () => a.members().map((m) => m.nodeId);
    for (let deadline = Date.now() + 10_000; !ids().includes(member.nodeId) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    expect(ids()).toContain(member.nodeId);
    for (let deadline = Date.now() + 10_000; member.owners().length < 3 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    // A key another member owns: the forward reaches it (an id gossip did not know would be refused on the peer stream).
    let key = '';
    for (let i = 0; key === '' && i < 1_000; i++) if (member.ownerOf(`k${i}`) === 'n0') key = `k${i}`;
    expect((await member.allow({ key, limit: 5, windowMs: 60_000 })).allowed).toBe(true);
    expect(member.stats().forwarder.failovers).toBe(0);
    expect(member.stats().peerAuth.refusedStreams).toBe(0);
  }, 30_000);

  it('bad options are refused with a message naming the option', async () => {
    await expect(createNode({ replicas: 9 })).rejects.toThrow(/replicas/);
    await expect(createNode({ onUnavailable: 'maybe' as 'deny' })).rejects.toThrow(/onUnavailable/);
    await expect(createNode({ gossipKeys: ['short'] })).rejects.toThrow(/base64/);
    await expect(createNode({ nodeId: 'has space' })).rejects.toThrow(/nodeId/);
  });

  it('sync replication answers only after the replica holds the state', async () => {
    const cluster = await startCluster(2, { replication: 'sync', replicationDelayMs: 1000 });
    nodes.push(...cluster);
    const [a, b] = cluster as [RingLimitNode, RingLimitNode];
    let key = '';
    for (let i = 0; i < 1000 && key === ''; i++) if (a.ownerOf(`s${i}`) === 'n0') key = `s${i}`;
    for (let i = 0; i < 7; i++) await a.allow({ key, limit: 10, windowMs: 60_000 });
    // No async flush could have run (1 s delay): the replica has it because sync waited for the ack.
    const cells = new Float64Array(4);
    expect(b.store.readEntry('default', key, cells)).toBe(0);
    expect(b.store.allow({ key, limit: 10, windowMs: 60_000, cost: 0 }).remaining).toBe(3);
  }, 30_000);
});

describe('ringlimit serve flags', () => {
  it('maps flags onto node options', () => {
    const { options, readyJson } = parseServeArgs(['--node-id', 'a1', '--port', '7001', '--gossip-port', '7946', '--join', '10.0.0.1:7946, 10.0.0.2:7946', '--replicas', '2', '--data-dir', '/tmp/x', '--ready-json']);
    expect(options).toMatchObject({ nodeId: 'a1', port: 7001, gossipPort: 7946, join: ['10.0.0.1:7946', '10.0.0.2:7946'], replicas: 2, dataDir: '/tmp/x', cluster: true });
    expect(readyJson).toBe(true);
  });

  it('refuses unknown flags and bad values with a clear message', () => {
    expect(() => parseServeArgs(['--bogus'])).toThrow(/Unknown option '--bogus'/);
    expect(() => parseServeArgs(['--port', '70000'])).toThrow(/--port must be a port number/);
    expect(() => parseServeArgs(['--replicas', 'two'])).toThrow(/--replicas/);
    expect(() => parseServeArgs(['--gossip-key-file', '/nonexistent/key'])).toThrow(/cannot read/);
  });
});
