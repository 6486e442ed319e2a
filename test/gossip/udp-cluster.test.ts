import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seededRng } from '../../src/common/rng.js';
import { parseIpAddress } from '../../src/gossip/address.js';
import { defaults } from '../../src/gossip/defaults.js';
import { suspicionBoundsMs } from '../../src/gossip/scaling.js';
import { buildGossipForChild } from './build-for-child.js';
import { invalidDatagram } from './fuzz.js';
import { UdpCluster, liveIds, waitFor } from './udp-harness.js';

let build: { dir: string; cleanup: () => void };
let cluster: UdpCluster | undefined;

beforeAll(() => {
  build = buildGossipForChild();
});
afterAll(() => build.cleanup());
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const ALL = 'local0,local1,local2,local3,remote';

/** Four members in this process plus one child process, LAN preset, converged. */
async function fiveMembers(): Promise<{ c: UdpCluster; child: import('node:child_process').ChildProcess; port: number }> {
  const c = (cluster = new UdpCluster(build.dir));
  const first = await c.addLocal('local0');
  for (let i = 1; i < 4; i++) await c.addLocal(`local${i}`, [first.address]);
  const { child, address } = await c.spawn('remote', 0, [first.address], { version: '1' });
  await waitFor(() => c.nodes.every((n) => liveIds(n) === ALL), 5_000, 'five members converge');
  return { c, child, port: parseIpAddress(address)?.port ?? 0 };
}

describe('SWIM over real UDP on 127.0.0.1 (LAN preset)', () => {
  it('five members converge; a SIGKILLed member is declared failed by all others within the protocol bound (about 1 s measured)', async () => {
    const { c, child } = await fiveMembers();
    const killedAt = performance.now();
    child.kill('SIGKILL');
    await waitFor(() => c.events.filter((e) => e.event === 'fail' && e.member.nodeId === 'remote').length === 4, 3_000, 'all see fail');
    const times = c.events.filter((e) => e.event === 'fail' && e.member.nodeId === 'remote').map((e) => Math.round(e.atMs - killedAt));
    console.log(`[gossip] SIGKILL -> fail per observer (ms): ${times.join(', ')}`);
    // The protocol's bound, from the LAN preset: the first probe of the dead member within a
    // round of probes (4 others), its timeout and the indirect probes within one interval, a
    // lone accuser's full suspicion timeout (no confirmation), one gossip round to spread the
    // verdict. Typically about 1 s (confirmations shorten the suspicion); 1.5 s was the lone
    // accuser's case with no slack, and failed when the suite's other processes held the cores.
    const lan = defaults.presets.lan;
    const suspicion = suspicionBoundsMs(5, lan.suspicionMinMs, lan.suspicionMaxMultiplier);
    const boundMs = 4 * lan.probeIntervalMs + lan.probeIntervalMs + suspicion.maxMs + lan.gossipIntervalMs;
    expect(Math.max(...times)).toBeLessThan(boundMs);
    expect(c.events.filter((e) => e.event === 'fail' && e.member.nodeId !== 'remote')).toEqual([]);
  });

  it('a restarted member on the same address rejoins with its new metadata', async () => {
    const { c, child, port } = await fiveMembers();
    child.kill('SIGKILL');
    await waitFor(() => c.events.filter((e) => e.event === 'fail' && e.member.nodeId === 'remote').length === 4, 3_000, 'remote failed');
    const seed = c.nodes[0]!.address;
    await c.spawn('remote', port, [seed], { version: '2' });
    await waitFor(
      () => c.nodes.every((n) => n.members().find((m) => m.nodeId === 'remote' && m.state === 'alive')?.meta['version'] === '2'),
      3_000,
      'restarted member seen with new metadata',
    );
    expect(c.events.filter((e) => e.event === 'join' && e.member.nodeId === 'remote' && e.member.meta['version'] === '2')).toHaveLength(4);
  });

  it('a member whose event loop stalls for 200 ms is not declared failed', async () => {
    const { c, child } = await fiveMembers();
    for (let round = 0; round < 3; round++) {
      const stalled = new Promise((resolve) => child.once('message', resolve));
      child.send({ type: 'stall', ms: 200 });
      await stalled;
      await new Promise((r) => setTimeout(r, 700));
    }
    await new Promise((r) => setTimeout(r, 1_500));
    const suspected = c.events.filter((e) => e.event === 'update' && e.member.nodeId === 'remote' && e.member.state === 'suspect').length;
    console.log(`[gossip] 3 x 200 ms stalls: suspect events ${suspected}, fail events 0 expected`);
    expect(c.events.filter((e) => e.event === 'fail')).toEqual([]);
    expect(c.nodes.every((n) => liveIds(n) === ALL)).toBe(true);
  });

  it('graceful leave is seen as leave, not fail, within a second', async () => {
    const { c, child } = await fiveMembers();
    const leftAt = performance.now();
    child.send({ type: 'stop' });
    const ms = await waitFor(
      () => c.events.filter((e) => e.event === 'leave' && e.member.nodeId === 'remote').length === 4,
      1_000,
      'all see leave',
    );
    console.log(`[gossip] graceful leave seen by all in ${Math.round(ms)} ms (since request ${Math.round(performance.now() - leftAt)} ms)`);
    expect(c.events.filter((e) => e.event === 'fail')).toEqual([]);
  });

  it('10,000 invalid datagrams at a live member: it keeps running and the cluster stays converged', async () => {
    const { c } = await fiveMembers();
    const target = c.nodes[1]!;
    const { host, port } = parseIpAddress(target.address)!;
    const socket = createSocket('udp4');
    const rng = seededRng(2024);
    const before = target.stats().packetsDropped;
    for (let i = 0; i < 10_000; i++) {
      socket.send(invalidDatagram(rng, 'local1', undefined), port, host);
      if (i % 20 === 0) await new Promise((r) => setImmediate(r)); // let the receiver drain its socket
    }
    await new Promise((r) => setTimeout(r, 1_000));
    socket.close();
    const dropped = target.stats().packetsDropped - before;
    console.log(`[gossip] fuzz: ${dropped} of 10000 datagrams dropped and counted by the target`);
    expect(dropped).toBeGreaterThan(9_900); // all of them, bar any the kernel itself drops under load
    expect(c.events.filter((e) => e.event === 'fail')).toEqual([]);
    expect(c.nodes.every((n) => liveIds(n) === ALL)).toBe(true);
  });

  it('joins through a DNS name (localhost) that resolves to the seed', async () => {
    const c = (cluster = new UdpCluster(build.dir));
    const first = await c.addLocal('local0');
    const { port } = parseIpAddress(first.address)!;
    const second = await c.addLocal('local1', [`localhost:${port}`]);
    await waitFor(() => liveIds(first) === 'local0,local1' && liveIds(second) === 'local0,local1', 3_000, 'two members via localhost');
  });
});
