import { afterEach, describe, expect, it } from 'vitest';
import { seededRng } from '../../src/common/rng.js';
import { Keyring } from '../../src/gossip/keyring.js';
import type { SwimMembership } from '../../src/gossip/swim.js';
import { encodeMessage } from '../../src/gossip/message-codec.js';
import { invalidDatagram } from './fuzz.js';
import { Sim, converged, view } from './sim.js';

let sim: Sim | undefined;

afterEach(async () => {
  await sim?.stopAll();
  sim = undefined;
});

function ids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `n${i}`);
}

describe('SWIM over the in-memory network (virtual time)', () => {
  it('five members converge', async () => {
    sim = new Sim(1);
    const nodes = await sim.cluster(5);
    await sim.until(() => converged(nodes, ids(5)), 3_000);
  });

  it('a crashed member is declared failed by every other member, once, within 1.5 s of virtual time', async () => {
    const s = (sim = new Sim(2));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    const victim = nodes[4]!;
    const others = nodes.slice(0, 4);
    const crashedAt = s.now;
    await victim.stop({ graceful: false });
    await s.until(() => others.every((n) => !view(n).includes('n4')), 3_000);
    const fails = s.events.filter((e) => e.event === 'fail' && e.member.nodeId === 'n4');
    expect(fails.map((e) => e.observer).sort()).toEqual(['n0', 'n1', 'n2', 'n3']);
    const slowest = Math.max(...fails.map((e) => e.atMs - crashedAt));
    expect(slowest).toBeLessThan(1_500);
    expect(s.events.some((e) => e.event === 'fail' && e.member.nodeId !== 'n4')).toBe(false);
  });

  it('a graceful leave is seen as leave (not fail) by everyone within a second', async () => {
    const s = (sim = new Sim(3));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    const leftAt = s.now;
    const stopping = nodes[2]!.stop();
    const others = nodes.filter((_, i) => i !== 2);
    const elapsed = await s.until(() => others.every((n) => !view(n).includes('n2')), 1_000, 5);
    await s.settle(stopping);
    expect(elapsed).toBeLessThan(1_000);
    const leaves = s.events.filter((e) => e.member.nodeId === 'n2' && (e.event === 'leave' || e.event === 'fail'));
    expect(leaves.every((e) => e.event === 'leave' && e.atMs - leftAt < 1_000)).toBe(true);
    expect(leaves).toHaveLength(4);
  });

  it('metadata updates reach all members', async () => {
    const s = (sim = new Sim(4));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    nodes[3]!.updateMeta({ state: 'draining', grpc: '127.0.0.1:7001' });
    await s.until(
      () => nodes.every((n) => n.members().find((m) => m.nodeId === 'n3')?.meta['state'] === 'draining'),
      2_000,
    );
    expect(s.events.filter((e) => e.event === 'update' && e.member.nodeId === 'n3' && e.member.meta['state'] === 'draining')).toHaveLength(4);
  });

  it("a member's own metadata update goes out at once, not at the next gossip tick (others wait on it to move keys)", async () => {
    const s = (sim = new Sim(4));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    // Queued, it would wait for the next gossip tick (gossipIntervalMs, 50 ms): 41 ms with this seed.
    nodes[3]!.updateMeta({ state: 'draining', grpc: '127.0.0.1:7001' });
    const knows = () => nodes.filter((n) => n !== nodes[3] && n.members().find((m) => m.nodeId === 'n3')?.meta['state'] === 'draining').length;
    // The fan-out (3 members) hears it within the network's delay (1 ms), steps of 1 ms.
    const elapsed = await s.until(() => knows() >= 3, 2_000, 1);
    expect(elapsed).toBeLessThanOrEqual(5);
  });

  it('meta updates in a burst (a load factor that changes every 10 ms) run at most 4 extra gossip rounds per tick', async () => {
    const s = (sim = new Sim(4));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    const before = nodes[3]!.stats().packetsSent;
    // 50 updates within 1 ms of virtual time: one eager round, the rest at the ticks.
    for (let i = 0; i < 50; i++) nodes[3]!.updateMeta({ state: 'active', load: String(i) });
    const burst = nodes[3]!.stats().packetsSent - before;
    expect(burst).toBeGreaterThan(0);
    expect(burst).toBeLessThanOrEqual(3); // one round to gossipFanout members
  });

  it('a two-way partition splits the cluster, and healing reconverges within 5 s', async () => {
    const s = (sim = new Sim(5));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    const sideA = nodes.slice(0, 2);
    const sideB = nodes.slice(2);
    s.network.partition(
      sideA.map((n) => n.address),
      sideB.map((n) => n.address),
    );
    await s.until(() => converged(sideA, ['n0', 'n1']) && converged(sideB, ['n2', 'n3', 'n4']), 5_000);
    s.network.heal();
    const healMs = await s.until(() => converged(nodes, ids(5)), 5_000);
    expect(healMs).toBeLessThan(5_000);
  });

  it('push-pull opens with a digest: a converged cluster exchanges no full state, and a view that differs is repaired in full', async () => {
    const s = (sim = new Sim(16));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    await s.run(2_000); // let the join's updates drain
    const total = (field: 'syncRequestsSent' | 'syncDigestsSent' | 'syncDigestsMatched'): number => nodes.reduce((sum, n) => sum + n.stats()[field], 0);
    const full = total('syncRequestsSent');
    const digests = total('syncDigestsSent');
    const matched = total('syncDigestsMatched');
    await s.run(10_000); // 20 push-pull intervals per member
    expect(total('syncDigestsSent') - digests).toBeGreaterThanOrEqual(80);
    expect(total('syncDigestsMatched') - matched).toBe(total('syncDigestsSent') - digests);
    expect(total('syncRequestsSent')).toBe(full);

    // n4 cut off until the others declare it failed: the views differ, the digests too, and
    // the full exchange that follows brings n4 back.
    const others = nodes.slice(0, 4).map((n) => n.address);
    s.network.partition([nodes[4]!.address], others);
    await s.until(() => converged(nodes.slice(0, 4), ids(4)), 5_000);
    s.network.heal();
    await s.until(() => converged(nodes, ids(5)), 5_000);
    expect(total('syncRequestsSent')).toBeGreaterThan(full);
  });

  it('a one-way partition does not split the cluster permanently', async () => {
    const s = (sim = new Sim(6));
    const nodes = await s.cluster(4);
    await s.until(() => converged(nodes, ids(4)), 3_000);
    s.network.block(nodes[0]!.address, nodes[1]!.address);
    await s.run(3_000);
    s.network.heal();
    await s.until(() => converged(nodes, ids(4)), 5_000);
  });

  it('converges despite 10% packet loss and keeps everyone alive', async () => {
    const s = (sim = new Sim(7, 0.1));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 5_000);
    await s.run(5_000);
    expect(s.events.filter((e) => e.event === 'fail')).toEqual([]);
  });

  it('a restarted node (same id and address, new generation) rejoins with its new metadata', async () => {
    const s = (sim = new Sim(8));
    const nodes = await s.cluster(4);
    await s.until(() => converged(nodes, ids(4)), 3_000);
    const old = nodes[3]!;
    const address = old.address;
    await old.stop({ graceful: false });
    await s.run(50); // restarted before anyone noticed
    const reborn = await s.add({ nodeId: 'n3', address, meta: { version: '2' } });
    const live = [...nodes.slice(0, 3), reborn];
    await s.settle(reborn.join([nodes[0]!.address]));
    await s.until(() => live.every((n) => n.members().find((m) => m.nodeId === 'n3')?.meta['version'] === '2'), 2_000);
    await s.until(() => converged(live, ids(4)), 3_000);
    expect(reborn.self.generation).toBeGreaterThan(old.self.generation);
  });

  it('a node without the cluster key never appears in any member list', async () => {
    const key = new Uint8Array(32).fill(7);
    const s = (sim = new Sim(9));
    const a = await s.add({ keyring: new Keyring([key]) });
    const b = await s.add({ keyring: new Keyring([key]) });
    await s.joinAll([b], [a.address]);
    const intruder = await s.add({ nodeId: 'intruder', keyring: new Keyring([new Uint8Array(32).fill(9)]) });
    const plain = await s.add({ nodeId: 'plain' });
    const attempts = [intruder.join([a.address]), plain.join([b.address])];
    await s.run(6_000);
    await expect(attempts[0]).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(attempts[1]).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(view(a)).toEqual(['n0', 'n1']);
    expect(view(b)).toEqual(['n0', 'n1']);
    expect(a.stats().dropReasons['authFailed']).toBeGreaterThan(0);
    expect(b.stats().dropReasons['authMissing']).toBeGreaterThan(0);
  });

  it('with a cluster key, a captured packet sent again is dropped as a replay, and an old one as stale', async () => {
    const key = new Uint8Array(32).fill(7);
    const s = (sim = new Sim(11));
    const a = await s.add({ keyring: new Keyring([key]) });
    const b = await s.add({ keyring: new Keyring([key]) });
    const captured: Uint8Array[] = [];
    let capturing = true;
    const send = s.network.send.bind(s.network);
    s.network.send = (bytes, from, to) => {
      if (capturing && from === a.address && to === b.address) captured.push(Uint8Array.from(bytes));
      send(bytes, from, to);
    };
    await s.joinAll([b], [a.address]);
    await s.run(2_000);
    capturing = false;
    expect(captured.length).toBeGreaterThan(3);
    const before = b.stats();
    for (const packet of captured) s.network.inject(packet, a.address, b.address);
    await s.run(10);
    expect((b.stats().dropReasons['replayed'] ?? 0) - (before.dropReasons['replayed'] ?? 0)).toBe(captured.length);
    await s.run(40_000); // past the 30 s skew window: the same packets are now stale
    const later = b.stats();
    for (const packet of captured) s.network.inject(packet, a.address, b.address);
    await s.run(10);
    expect((b.stats().dropReasons['stale'] ?? 0) - (later.dropReasons['stale'] ?? 0)).toBe(captured.length);
    expect(view(a)).toEqual(['n0', 'n1']);
    expect(view(b)).toEqual(['n0', 'n1']);
  });

  it('keys rotate without a split: accept any installed key, send with the primary', async () => {
    const oldKey = new Uint8Array(32).fill(1);
    const newKey = new Uint8Array(32).fill(2);
    const s = (sim = new Sim(10));
    const rings = [new Keyring([oldKey]), new Keyring([oldKey]), new Keyring([oldKey])];
    const nodes: SwimMembership[] = [];
    for (const keyring of rings) nodes.push(await s.add({ keyring }));
    await s.joinAll(nodes.slice(1), [nodes[0]!.address]);
    await s.until(() => converged(nodes, ids(3)), 3_000);
    for (const r of rings) r.install(newKey);
    rings[0]!.usePrimary(newKey);
    await s.run(1_000);
    for (const r of rings) r.usePrimary(newKey);
    for (const r of rings) r.remove(oldKey);
    await s.run(2_000);
    expect(converged(nodes, ids(3))).toBe(true);
    expect(s.events.filter((e) => e.event === 'fail')).toEqual([]);
  });

  it('a seed list of only itself forms a one-node cluster', async () => {
    const s = (sim = new Sim(11));
    const solo = await s.add();
    await expect(solo.join([solo.address])).resolves.toBe(0);
    expect(view(solo)).toEqual(['n0']);
  });

  it('nodes that start at the same moment and list each other as seeds form one cluster', async () => {
    const s = (sim = new Sim(12));
    const nodes: SwimMembership[] = [];
    for (let i = 0; i < 4; i++) nodes.push(await s.add({ address: `127.0.0.1:${20_000 + i}` }));
    const seeds = nodes.map((n) => n.address);
    // n3's socket is "not up yet" for the first half second.
    for (const n of nodes) s.network.block(n.address, nodes[3]!.address);
    const joins = nodes.map((n) => n.join(seeds));
    await s.run(500);
    s.network.heal();
    await s.run(1_000);
    await Promise.all(joins);
    await s.until(() => converged(nodes, ids(4)), 3_000);
  });
});

describe('robustness (virtual time)', () => {
  it('a member cut off for 300 ms is suspected, refutes, and is never declared failed', async () => {
    const s = (sim = new Sim(13, 0, 'lan'));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    const victim = nodes[4]!.address;
    const rest = nodes.slice(0, 4).map((n) => n.address);
    s.network.partition([victim], rest);
    await s.run(300);
    s.network.heal();
    await s.run(3_000);
    expect(s.events.filter((e) => e.event === 'fail')).toEqual([]);
    expect(converged(nodes, ids(5))).toBe(true);
    expect(nodes[4]!.stats().refutations).toBeGreaterThan(0);
  });

  it('10,000 invalid datagrams at a live member are dropped and counted; the cluster stays converged', async () => {
    const s = (sim = new Sim(14));
    const nodes = await s.cluster(5);
    await s.until(() => converged(nodes, ids(5)), 3_000);
    const target = nodes[1]!;
    const rng = seededRng(77);
    const before = target.stats().packetsDropped;
    for (let i = 0; i < 10_000; i++) {
      s.network.inject(invalidDatagram(rng, 'n1', undefined), `127.0.0.1:${1 + rng.int(65_535)}`, target.address);
      if (i % 1_000 === 0) await s.run(100);
    }
    await s.run(2_000);
    expect(target.stats().packetsDropped - before).toBe(10_000);
    expect(s.events.filter((e) => e.event === 'fail')).toEqual([]);
    expect(converged(nodes, ids(5))).toBe(true);
  });

  it('without a key, a new member waits as a candidate until it answers a ping: strangers\' news never reaches a member list or the next member, and expires', async () => {
    const s = (sim = new Sim(16));
    const nodes = await s.cluster(3);
    await s.until(() => converged(nodes, ids(3)), 3_000);
    const [n0, n1] = [nodes[0]!, nodes[1]!];
    const confirmed = n0.stats().candidatesConfirmed; // n1 and n2, which joined through n0
    expect(confirmed).toBe(2);
    // A stranger (no socket behind 127.0.0.9) tells n0 of 30 members, and introduces itself.
    const stranger = '127.0.0.9:4000';
    const fakes = Array.from({ length: 30 }, (_, i) => ({ kind: 'alive' as const, nodeId: `fake-${i}`, generation: 1, incarnation: 0, address: `127.0.0.9:${5000 + i}`, meta: {} }));
    for (let i = 0; i < 30; i += 10) s.network.inject(encodeMessage({ type: 'gossip', from: 'evil', updates: fakes.slice(i, i + 10) }, undefined), stranger, n0.address);
    s.network.inject(encodeMessage({ type: 'gossip', from: 'evil', updates: [{ kind: 'alive', nodeId: 'evil', generation: 1, incarnation: 0, address: stranger, meta: {} }] }, undefined), stranger, n0.address);
    await s.run(50);
    expect(n0.stats().candidates).toBe(31);
    expect(view(n0)).toEqual(ids(3));
    // The self-introduction was pinged at once, and the stranger never answered.
    await s.run(1_000);
    expect(view(n0)).toEqual(ids(3));
    expect(view(n1)).toEqual(ids(3)); // nothing of it was gossiped on
    expect(n0.stats().candidatePings).toBeGreaterThan(2);
    expect(n0.stats().candidatesConfirmed).toBe(confirmed);
    await s.run(10_000);
    expect(n0.stats().candidates).toBe(0);
    expect(n0.stats().candidatesExpired).toBe(31);
    // A real newcomer introduces itself to the seed, answers its ping, and is everyone's member.
    const newcomer = await s.add({ nodeId: 'n3' });
    await s.joinAll([newcomer], [n0.address]);
    await s.until(() => converged(s.nodes, ids(4)), 2_000);
    expect(n0.stats().candidatesConfirmed).toBe(confirmed + 1);
    const joinedAtSeed = s.events.find((e) => e.observer === 'n0' && e.event === 'join' && e.member.nodeId === 'n3');
    expect(joinedAtSeed).toBeDefined();
  });

  it('with a key, nothing is held as a candidate: members join at once, as before', async () => {
    const key = new Uint8Array(32).fill(3);
    const s = (sim = new Sim(17));
    const first = await s.add({ keyring: new Keyring([key]) });
    const rest = [await s.add({ keyring: new Keyring([key]) }), await s.add({ keyring: new Keyring([key]) })];
    await s.joinAll(rest, [first.address]);
    await s.until(() => converged(s.nodes, ids(3)), 3_000);
    expect(s.nodes.map((n) => n.stats().candidatePings + n.stats().candidatesConfirmed)).toEqual([0, 0, 0]);
  });

  it('push-pull full state is chunked under maxPacketBytes for 60 members with metadata', async () => {
    const s = (sim = new Sim(15));
    const first = await s.add({ meta: { grpc: '127.0.0.1:50051', state: 'active', proto: '1' } });
    const rest = [];
    for (let i = 1; i < 60; i++) rest.push(await s.add({ meta: { grpc: `127.0.0.1:${50_051 + i}`, state: 'active', proto: '1' } }));
    await s.joinAll(rest, [first.address]);
    await s.until(() => s.nodes.every((n) => n.members().length === 60), 10_000, 50);
    expect(s.network.dropped).toBe(0); // nothing was ever over the 1400-byte network limit
  });
});
