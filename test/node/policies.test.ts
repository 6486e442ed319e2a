import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import { parseServeArgs } from '../../src/cli/serve.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { readPolicyFile, watchPolicyFile } from '../../src/node/ops/policy-file.js';
import { rawPeerStream, startCluster, stopAll, unaryCall, waitFor } from './helpers.js';
import { policyDigest } from '../../src/node/sync/policy-sync.js';
import { encodeFrame } from '../../src/node/wire/codec.js';
import { FrameType } from '../../src/node/wire/frames.js';

const POLICIES = `
defaults:
  "*": { limit: 4, window: 1h }
groups:
  pro: { weight: 3 }
`;

describe('policies on a cluster', () => {
  let nodes: RingLimitNode[] = [];
  let client: RingLimitClient | undefined;
  afterEach(async () => {
    client?.close();
    client = undefined;
    await stopAll(nodes);
  });

  it('requests that name only key and action (and group) get the policies’ limits, exactly, through every node and the client', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringlimit-policies-'));
    writeFileSync(join(dir, 'p.yaml'), POLICIES);
    const policies = readPolicyFile(join(dir, 'p.yaml'));
    nodes = await startCluster(3, { policies, replicas: 1 });
    let allowed = 0;
    for (let i = 0; i < 9; i++) if ((await nodes[i % 3]!.allow({ key: 'u1', action: 'export' })).allowed) allowed++;
    expect(allowed).toBe(4);
    client = new RingLimitClient({ nodes: nodes.map((n) => n.grpcAddress!) });
    const answers = [];
    for (let i = 0; i < 12; i++) answers.push(await client.allow({ key: 'u2', action: 'export', group: 'pro' }));
    expect(answers.filter((a) => a.allowed).length).toBe(12);
    expect(answers[0]!.limit).toBe(12);
    expect((await client.allow({ key: 'u2', action: 'export', group: 'pro' })).allowed).toBe(false);
  }, 30_000);

  it('node policy handles: allowNow answers for keys decided here, allow() forwards the rest, and counts are exact', async () => {
    nodes = await startCluster(2, { replicas: 1, handoffWindowMs: 0 });
    const handle = nodes[0]!.policy({ action: 'upload', limit: 3, windowMs: 3_600_000 });
    const local = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'].find((k) => nodes[0]!.ownerOf(k, 'upload') === 'n0')!;
    const remote = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'].find((k) => nodes[0]!.ownerOf(k, 'upload') === 'n1')!;
    expect(handle.allowNow(local)).toMatchObject({ allowed: true, limit: 3, remaining: 2 });
    expect(handle.allowNow(remote)).toBeUndefined();
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await handle.allow(remote)).allowed);
    expect(results).toEqual([true, true, true, false]);
    // The owner saw the same key: a plain request there finds it used up.
    expect((await nodes[1]!.allow({ key: remote, action: 'upload', limit: 3, windowMs: 3_600_000 })).allowed).toBe(false);
    await expect(handle.allow('')).rejects.toThrow(/^key: /);
  }, 30_000);
});

describe('policy files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringlimit-policy-file-'));

  it('name the file and the path of a mistake, or the line and column of a syntax error', () => {
    writeFileSync(join(dir, 'bad.yaml'), 'groups:\n  pro:\n    actions:\n      search: { limit: -1 }\n');
    expect(() => readPolicyFile(join(dir, 'bad.yaml'))).toThrow(`${join(dir, 'bad.yaml')}: groups.pro.actions.search.limit: must be a positive integer, got -1`);
    writeFileSync(join(dir, 'syntax.yaml'), 'defaults:\n  "*": { limit: 4, window: 1h\n');
    expect(() => readPolicyFile(join(dir, 'syntax.yaml'))).toThrow(new RegExp(`^${join(dir, 'syntax.yaml')}:\\d+:\\d+: `));
    writeFileSync(join(dir, 'p.json'), JSON.stringify({ defaults: { '*': { limit: 2, window: 1000 } } }));
    expect(readPolicyFile(join(dir, 'p.json')).resolve('k', 'a', undefined)).toMatchObject({ limit: 2, windowMs: 1_000 });
    expect(() => readPolicyFile(join(dir, 'missing.yaml'))).toThrow(/cannot read the policy file/);
    expect(() => parseServeArgs(['--policies', join(dir, 'bad.yaml')])).toThrow(/groups\.pro\.actions\.search\.limit/);
    expect(parseServeArgs(['--policies', join(dir, 'p.json')]).policyFile).toBe(join(dir, 'p.json'));
  });

  it('are watched: a change (also written by rename, as editors do) is taken, a bad edit is reported and changes nothing', async () => {
    const path = join(dir, 'watched.yaml');
    writeFileSync(path, 'defaults:\n  "*": { limit: 1, window: 1m }\n');
    const limits: number[] = [];
    const errors: string[] = [];
    const watch = watchPolicyFile(path, 20, (p) => limits.push(p.resolve('k', 'a', undefined).limit!), (e) => errors.push(e.message));
    try {
      writeFileSync(`${path}.tmp`, 'defaults:\n  "*": { limit: 22, window: 1m }\n');
      renameSync(`${path}.tmp`, path);
      await waitFor(() => limits.length === 1, 5_000, 'the change');
      writeFileSync(path, 'defaults:\n  "*": { limit: zero }\n');
      await waitFor(() => errors.length === 1, 5_000, 'the bad edit');
      expect(limits).toEqual([22]);
      expect(errors[0]).toMatch(/defaults\.\*\.limit: must be a positive integer/);
    } finally {
      watch.close();
    }
  });
});

describe('policies cluster-wide', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  const limitOn = (node: RingLimitNode, key: string): number | undefined => {
    try {
      return node.allowNow({ key, action: 'report', cost: 0 })?.limit;
    } catch {
      return undefined;
    }
  };

  it('a change on one node reaches all five within a second; a node that joins later pulls it; a document that fails its digest is refused', async () => {
    nodes = await startCluster(5, { handoffWindowMs: 0, policies: { defaults: { '*': { limit: 10, window: '1h' } } } });
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    // A key each node decides itself, so allowNow answers on every node.
    const ownKey = nodes.map((n) => keys.find((k) => n.ownerOf(k, 'report') === n.nodeId)!);
    expect(nodes.map((n, i) => limitOn(n, ownKey[i]!))).toEqual([10, 10, 10, 10, 10]);
    const started = performance.now();
    const version = nodes[2]!.setPolicies({ defaults: { '*': { limit: 77, window: '1h' } } });
    expect(version).toBeGreaterThan(0);
    await waitFor(() => nodes.every((n, i) => limitOn(n, ownKey[i]!) === 77), 5_000, 'every node to take the change');
    const convergedMs = performance.now() - started;
    expect(convergedMs).toBeLessThan(1_000);
    expect(new Set(nodes.map((n) => n.stats().policies.digest)).size).toBe(1);
    expect(nodes.map((n) => n.stats().policies.version)).toEqual([version, version, version, version, version]);

    // A node that starts later with its own (older) file takes the cluster's newer version.
    const { createNode } = await import('../../src/node/node.js');
    const late = await createNode({ nodeId: 'late', gossipPreset: 'test', port: 0, gossipPort: 0, join: [nodes[0]!.gossipAddress!], clusterName: nodes[0]!.options.clusterName, handoffWindowMs: 0, policies: { defaults: { '*': { limit: 3, window: '1h' } } } });
    nodes.push(late);
    await waitFor(() => late.stats().policies.version === version, 5_000, 'the late node to pull the newer version');
    expect(late.policies?.resolve('x', 'report', undefined).limit).toBe(77);
    expect(late.stats().policies.pulls).toBeGreaterThan(0);

    // A member's document that does not match its digest (or does not validate) changes nothing.
    const target = nodes[0]!;
    const { stream, close } = rawPeerStream(target, 'n1');
    stream.on('error', () => undefined);
    stream.write(encodeFrame({ type: FrameType.PolicyDoc, id: 1, version: version + 1_000, digest: '0123456789abcdef', text: '{"defaults":{"*":{"limit":1,"window":"1h"}}}' }));
    const text = '{"defaults":{"*":{"limit":-1}}}';
    stream.write(encodeFrame({ type: FrameType.PolicyDoc, id: 2, version: version + 1_000, digest: policyDigest(text), text }));
    await waitFor(() => target.stats().policies.refused === 2, 5_000, 'both documents refused');
    close();
    expect(target.stats().policies.version).toBe(version);
    expect(limitOn(target, ownKey[0]!)).toBe(77);
  }, 30_000);
});

describe('the admin RPC', () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
  });

  type PoliciesInfo = { version: number; digest: string; document: string };
  const ADMIN = 'admin-token-0123456789abcdef';
  const call = async (node: RingLimitNode, method: 'setPolicies' | 'getPolicies', request: object, token?: string) => {
    const { error, response } = await unaryCall<PoliciesInfo>(clients, rateLimiterClientConstructor(), node, method, request, token);
    return { error, info: response };
  };

  it('SetPolicies changes the policies cluster-wide with an admin token; a bad document is refused with its path; no token, no change', async () => {
    nodes = await startCluster(2, { adminTokens: [ADMIN], handoffWindowMs: 0 });
    const [n0, n1] = nodes as [RingLimitNode, RingLimitNode];
    expect((await call(n0, 'setPolicies', { document: 'defaults: { "*": { limit: 9, window: 1m } }' })).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    const bad = await call(n0, 'setPolicies', { document: 'defaults:\n  search: { limit: 0 }\n' }, ADMIN);
    expect(bad.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.error?.details).toMatch(/SetPolicies: defaults\.search\.limit: must be a positive integer, got 0/);
    const set = await call(n0, 'setPolicies', { document: 'defaults: { "*": { limit: 9, window: 1m } }' }, ADMIN);
    expect(set.error).toBeNull();
    expect(set.info?.version).toBeGreaterThan(0);
    await waitFor(() => n1.stats().policies.version === set.info!.version, 5_000, 'n1 to take the new version');
    const got = await call(n1, 'getPolicies', {}, ADMIN);
    expect(got.info).toMatchObject({ version: set.info!.version, digest: set.info!.digest });
    expect(JSON.parse(got.info!.document)).toEqual({ defaults: { '*': { limit: 9, window: '1m' } } });
    expect((await n1.allow({ key: 'k', action: 'any' })).limit).toBe(9);

    // The operator's load factor, by the same admin token: in force on every node.
    const Ctor = rateLimiterClientConstructor();
    const admin = new Ctor(n0.grpcAddress!, grpc.credentials.createInsecure()) as unknown as grpc.Client & { setLoadFactor: (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: { inForce: number }) => void) => void };
    clients.push(admin);
    const withToken = new grpc.Metadata();
    withToken.set('authorization', `Bearer ${ADMIN}`);
    const factor = await new Promise<{ e: grpc.ServiceError | null; r?: { inForce: number } }>((resolve) => admin.setLoadFactor({ factor: 0.5 }, withToken, (e, r) => resolve({ e, r })));
    expect(factor.e).toBeNull();
    expect(factor.r?.inForce).toBe(0.5);
    await waitFor(() => n1.loadFactor === 0.5, 5_000, 'n1 to take the factor');
    const outOfRange = await new Promise<grpc.ServiceError | null>((resolve) => admin.setLoadFactor({ factor: 2 }, withToken, (e) => resolve(e)));
    expect(outOfRange?.code).toBe(grpc.status.INVALID_ARGUMENT);
  }, 30_000);

  it('a node without admin tokens refuses admin calls', async () => {
    nodes = await startCluster(1);
    const refused = await call(nodes[0]!, 'getPolicies', {}, ADMIN);
    expect(refused.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(refused.error?.details).toMatch(/--admin-token-file/);
  }, 30_000);
});

describe('adaptive limits on nodes', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('a factor one node reports is in force on every node (the smallest wins), and recovers', async () => {
    nodes = await startCluster(3, { handoffWindowMs: 0 });
    nodes[1]!.setLoadFactor(0.5);
    await waitFor(() => nodes.every((n) => n.loadFactor === 0.5), 5_000, 'every node to take 0.5');
    expect((await nodes[2]!.allow({ key: 'k', action: 'a', limit: 10, windowMs: 60_000 })).limit).toBe(5);
    nodes[0]!.setLoadFactor(0.8); // a larger one does not lift n1's
    await new Promise((r) => setTimeout(r, 200));
    expect(nodes.map((n) => n.loadFactor)).toEqual([0.5, 0.5, 0.5]);
    nodes[1]!.setLoadFactor(1);
    await waitFor(() => nodes.every((n) => n.loadFactor === 0.8), 5_000, 'every node to take 0.8');
  }, 30_000);

  it('measured: the event-loop delay of a busy process shrinks the limits, and they recover once it is quiet', async () => {
    const { createNode } = await import('../../src/node/node.js');
    const node = await createNode({ adaptive: { sampleMs: 50, overloadAbove: 150, healthyBelow: 60, decreaseBy: 0.5, decreaseEveryMs: 0, increaseBy: 0.5, recoverAfterMs: 100 } });
    nodes.push(node);
    const busyUntil = Date.now() + 1_000;
    while (node.loadFactor === 1 && Date.now() < busyUntil) {
      const spin = Date.now() + 300;
      while (Date.now() < spin) {
        // the event loop is blocked: the protected work is overloaded
      }
      await new Promise((r) => setTimeout(r, 60));
    }
    expect(node.loadFactor).toBeLessThan(1);
    await waitFor(() => node.loadFactor === 1, 10_000, 'the factor to recover');
  }, 30_000);
});

describe('weighted fair share across a cluster', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('the action’s coordinator splits one capacity among users entering through every node, by weight', async () => {
    nodes = await startCluster(3, {
      handoffWindowMs: 0,
      policies: {
        defaults: { search: { limit: 100_000, window: '1s', algorithm: 'sliding-window' } },
        groups: { w1: { weight: 1 }, w2: { weight: 2 }, w5: { weight: 5 } },
        shared: { search: { limit: 300, window: '1s' } },
      },
    });
    // Heavy users ask 200/s each (the capacity is 300/s for all); heavy-5 comes through two nodes; a light user asks 10/s.
    const users = [
      { key: 'heavy-1', group: 'w1', weight: 1, perSecond: 200, via: [0] },
      { key: 'heavy-2', group: 'w2', weight: 2, perSecond: 200, via: [1] },
      { key: 'heavy-5', group: 'w5', weight: 5, perSecond: 200, via: [1, 2] },
      { key: 'light', group: 'w5', weight: 5, perSecond: 10, via: [2] },
    ];
    const admitted = users.map(() => 0);
    const offered = users.map(() => 0);
    const owed = users.map(() => 0);
    const started = Date.now();
    const measureFrom = started + 2_000;
    const end = started + 4_000;
    let last = Date.now();
    let turn = 0;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 10));
      const now = Date.now();
      const calls: Promise<void>[] = [];
      users.forEach((u, i) => {
        owed[i]! += (u.perSecond * (now - last)) / 1000;
        while (owed[i]! >= 1) {
          owed[i]! -= 1;
          if (now >= measureFrom) offered[i]!++;
          const node = nodes[u.via[turn++ % u.via.length]!]!;
          calls.push(node.allow({ key: u.key, action: 'search', group: u.group }).then((d) => void (d.allowed && now >= measureFrom && admitted[i]!++)));
        }
      });
      last = now;
      await Promise.all(calls);
    }
    const seconds = (end - measureFrom) / 1000;
    const total = admitted.reduce((a, b) => a + b, 0);
    // A busy machine may offer less than asked (the loop waits for every answer): judge against what was offered.
    const offeredPerSecond = offered.reduce((a, b) => a + b, 0) / seconds;
    // One capacity for the cluster (three nodes each enforcing it alone would admit up to 3 x).
    expect(total / seconds).toBeGreaterThan(Math.min(300, offeredPerSecond) * 0.85);
    expect(total / seconds).toBeLessThan(300 * 1.15);
    expect(admitted[3]!).toBeGreaterThanOrEqual(offered[3]! * 0.8); // the light user gets what it asks (10/s)
    // Against the weighted max-min fair split of 300/s over what each user offered (water-filling).
    const fair = users.map(() => 0);
    let left = 300;
    let open = users.map((_, i) => i);
    while (open.length > 0 && left > 1e-9) {
      const perWeight = left / open.reduce((a, i) => a + users[i]!.weight, 0);
      const capped = open.filter((i) => offered[i]! / seconds - fair[i]! <= perWeight * users[i]!.weight);
      if (capped.length === 0) {
        for (const i of open) fair[i]! += perWeight * users[i]!.weight;
        break;
      }
      for (const i of capped) {
        left -= offered[i]! / seconds - fair[i]!;
        fair[i] = offered[i]! / seconds;
      }
      open = open.filter((i) => !capped.includes(i));
    }
    const { jainIndex } = await import('../../src/limiter/fair-share.js');
    expect(jainIndex([0, 1, 2].map((i) => admitted[i]! / seconds / fair[i]!))).toBeGreaterThan(0.95);
    const coordinator = nodes.find((n) => n.stats().fairShare.reportsReceived > 0);
    expect(coordinator).toBeDefined();
  }, 30_000);
});
