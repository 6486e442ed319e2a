import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { createSwimMembership, Keyring, type PacketTransport } from '../../src/gossip/index.js';
import { parseIpAddress } from '../../src/gossip/address.js';
import { encodeMessage } from '../../src/gossip/message-codec.js';
import type { Message, Update } from '../../src/gossip/messages.js';
import type { SwimMembership } from '../../src/gossip/swim.js';
import { waitFor } from './udp-harness.js';

/**
 * Issue 28, findings 5 and 8 (gossip), as the probe ran them: real members on 127.0.0.1 over
 * real UDP (LAN preset), an attacker with a plain UDP socket.
 */

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const nodes: SwimMembership[] = [];
const sockets: Socket[] = [];
const timers: NodeJS.Timeout[] = [];

afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t);
  for (const s of sockets.splice(0)) s.close();
  await Promise.all(nodes.splice(0).map((n) => n.stop({ graceful: false })));
});

async function member(nodeId: string, seeds: string[], extra: Parameters<typeof createSwimMembership>[0] = {}): Promise<SwimMembership> {
  const node = await createSwimMembership({ nodeId, preset: 'lan', ...extra });
  nodes.push(node);
  await node.start();
  await node.join(seeds);
  return node;
}

async function attacker(host = '127.0.0.1'): Promise<Socket> {
  const socket = createSocket('udp4');
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return socket;
}

function sendTo(socket: Socket, bytes: Uint8Array, address: string): void {
  const { host, port } = parseIpAddress(address)!;
  socket.send(bytes, port, host);
}

/** An unsigned packet, as anyone who reaches the port can send it. */
function forged(message: Message): Uint8Array {
  return encodeMessage(message, undefined);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function threeMembers(extra: Parameters<typeof createSwimMembership>[0] = {}): Promise<[SwimMembership, SwimMembership, SwimMembership]> {
  const o1 = await member('o1', [], extra);
  const o2 = await member('o2', [o1.address], extra);
  const o3 = await member('o3', [o1.address], extra);
  const all = [o1, o2, o3];
  await waitFor(() => all.every((n) => n.members().filter((m) => m.state === 'alive').length === 3), 5_000, 'three members converge');
  return [o1, o2, o3];
}

const view = (observer: SwimMembership, nodeId: string) => observer.members().find((m) => m.nodeId === nodeId);

describe('finding 5: a forged gossip packet cannot evict a live member for good', () => {
  it("[5,'evil',[[3,'o3',gen,2^53-1]]] to two members: o3 stays a member of both (the jump is implausible, dropped and counted)", async () => {
    const [o1, o2, o3] = await threeMembers();
    const evil = await attacker();
    const left: Update = { kind: 'left', nodeId: 'o3', generation: o3.self.generation, incarnation: MAX_SAFE };
    for (const target of [o1, o2]) sendTo(evil, forged({ type: 'gossip', from: 'evil', updates: [left] }), target.address);
    // The probe saw o3 gone for over 1.5 minutes; here it must never go.
    for (let i = 0; i < 30; i++) {
      await sleep(50);
      expect(view(o1, 'o3')?.state).toBe('alive');
      expect(view(o2, 'o3')?.state).toBe('alive');
    }
    expect(o1.stats().implausibleIncarnations + o2.stats().implausibleIncarnations).toBeGreaterThanOrEqual(2);
  });

  it('a forged accusation at 2^53-1 sent to the member itself is refuted with a new generation, which every view takes', async () => {
    const [o1, o2, o3] = await threeMembers();
    const evil = await attacker();
    const before = o3.self.generation;
    const suspect: Update = { kind: 'suspect', nodeId: 'o3', generation: before, incarnation: MAX_SAFE, from: 'evil' };
    sendTo(evil, forged({ type: 'gossip', from: 'evil', updates: [suspect] }), o3.address);
    // The old code set o3's incarnation to 2^53, which every receiver refuses: it could never be heard again.
    await waitFor(() => o3.self.generation > before, 2_000, 'o3 moves to a new generation');
    expect(Number.isSafeInteger(o3.self.incarnation)).toBe(true);
    expect(o3.stats().generationRefutations).toBe(1);
    await waitFor(
      () => [o1, o2].every((n) => view(n, 'o3')?.generation === o3.self.generation && view(n, 'o3')?.incarnation === o3.self.incarnation && view(n, 'o3')?.state === 'alive'),
      3_000,
      'every view has o3 as it says it is',
    );
  });

  it('a forged generation of 2^53-1 is implausible: o3 keeps its address in every view', async () => {
    const [o1, o2, o3] = await threeMembers();
    const evil = await attacker();
    const hijack: Update = { kind: 'alive', nodeId: 'o3', generation: MAX_SAFE, incarnation: 0, address: '127.0.0.1:9', meta: {} };
    for (const target of [o1, o2, o3]) sendTo(evil, forged({ type: 'gossip', from: 'evil', updates: [hijack] }), target.address);
    await sleep(1_000);
    for (const n of [o1, o2]) expect(view(n, 'o3')).toMatchObject({ address: o3.address, generation: o3.self.generation, state: 'alive' });
    expect(Number.isSafeInteger(o3.self.generation + 1)).toBe(true);
    expect(o1.stats().implausibleGenerations + o2.stats().implausibleGenerations + o3.stats().implausibleGenerations).toBe(3);
  });
});

describe('finding 8: a fake-member flood cannot keep a real member out', () => {
  it('with the member table flooded (and the flood going on), a real new member appears in every view', async () => {
    const maxMembers = 4_096;
    const [o1, o2, o3] = await threeMembers();
    // An established cluster: its members have answered each other's probes.
    await waitFor(() => [o1, o2, o3].every((n) => n.stats().membersProven === 2), 5_000, 'members proven');
    const evil = await attacker();
    let fakes = 0;
    const flood = (packets: number): void => {
      for (let p = 0; p < packets; p++) {
        const updates: Update[] = [];
        for (let i = 0; i < 20; i++, fakes++) {
          updates.push({ kind: 'alive', nodeId: `fake-${fakes}`, generation: 1, incarnation: 0, address: `127.0.0.1:${1 + (fakes % 1_000)}`, meta: {} });
        }
        const bytes = forged({ type: 'gossip', from: 'evil', updates });
        for (const target of [o1, o2, o3]) sendTo(evil, bytes, target.address);
      }
    };
    // Paced, so that loopback's socket buffers do not drop the flood before it lands. The probe
    // filled the tables to 4,089 of 4,096 this way; now a stranger fills at most its share.
    for (let sent = 0; sent < Math.ceil(maxMembers / 20) + 5; sent += 10) {
      flood(10);
      await sleep(10);
    }
    await waitFor(() => [o1, o2, o3].every((n) => n.stats().membersRejectedSource > 1_000), 5_000, 'the flood lands');
    for (const n of [o1, o2, o3]) expect(n.allMembers().length).toBeLessThan(maxMembers / 4);
    timers.push(setInterval(() => flood(5), 20));
    const o4 = await member('o4', [o1.address]);
    // The probe's real new node never appeared; the old table refused it as full.
    await waitFor(() => [o1, o2, o3].every((n) => view(n, 'o4')?.state === 'alive'), 10_000, 'o4 appears in every view');
    // The members that had proven themselves were never displaced by the flood.
    for (const n of [o1, o2, o3]) expect(['o1', 'o2', 'o3'].filter((id) => id !== n.self.nodeId).every((id) => view(n, id)?.state !== undefined)).toBe(true);
    expect(o4.members().length).toBeGreaterThanOrEqual(4);
  }, 30_000);
});

describe('finding 8: a flood from many source addresses cannot keep a real member out (no cluster key)', () => {
  it('thousands of invented members from 100 loopback addresses (127.0.0.2–101), 2,000 of them introducing themselves, announced over and over: the tables stay bounded and a real new member appears in every view', async () => {
    const SOURCES = 100;
    const SELF_IDS = 20; // invented members each attacker socket says it is, from its own address
    const HEARSAY = 64; // invented members each socket tells of (maxUnprovenMembersPerSource)
    const [o1, o2, o3] = await threeMembers();
    await waitFor(() => [o1, o2, o3].every((n) => n.stats().membersProven === 2), 5_000, 'members proven');
    const evil = await Promise.all(Array.from({ length: SOURCES }, (_, i) => attacker(`127.0.0.${2 + i}`)));
    let round = 0;
    // Each round, every socket introduces SELF_IDS invented members as itself (the packet's
    // sender, at the socket's own address) and tells of HEARSAY more at other addresses. The
    // attacker never answers a ping. Each round raises every incarnation, so no invented member
    // stays dead for long.
    const floodFrom = (i: number): void => {
      const socket = evil[i]!;
      const own = `${socket.address().address}:${socket.address().port}`;
      const packets: Uint8Array[] = [];
      for (let k = 0; k < SELF_IDS; k++) {
        const nodeId = `intro-${i}-${k}`;
        packets.push(forged({ type: 'gossip', from: nodeId, updates: [{ kind: 'alive', nodeId, generation: 1, incarnation: round, address: own, meta: {} }] }));
      }
      for (let k = 0; k < HEARSAY; k += 16) {
        const updates: Update[] = [];
        for (let j = k; j < k + 16; j++) updates.push({ kind: 'alive', nodeId: `told-${i}-${j}`, generation: 1, incarnation: round, address: `127.0.0.${2 + i}:${20_000 + j}`, meta: {} });
        packets.push(forged({ type: 'gossip', from: `intro-${i}-0`, updates }));
      }
      for (const bytes of packets) for (const target of [o1, o2, o3]) sendTo(socket, bytes, target.address);
    };
    // Paced, one socket's packets (24 to each member) every 20 ms, so that loopback's socket
    // buffers do not drop the flood before it lands: a round takes 2 s.
    const floodPaced = async (): Promise<void> => {
      round++;
      for (let i = 0; i < SOURCES; i++) {
        floodFrom(i);
        await sleep(20);
      }
    };
    await floodPaced();
    await floodPaced();
    const limits = o1.limits;
    for (const n of [o1, o2, o3]) {
      // The members table holds real members only; the invented ones wait (bounded) as candidates.
      expect(n.allMembers().length).toBeLessThanOrEqual(4);
      expect(n.stats().candidates).toBeLessThanOrEqual(limits.maxCandidates);
      expect(n.stats().candidatesRefused + n.stats().membersRejectedSource + n.stats().candidatesExpired).toBeGreaterThan(1_000);
    }
    // The flood goes on while o4 joins.
    let flooding = true;
    const keepFlooding = (async () => {
      while (flooding) await floodPaced();
    })();
    try {
      const joinedAt = performance.now();
      const o4 = await member('o4', [o1.address]);
      // On the code before candidates, the tables were full of invented members that had introduced themselves, and o4's own introduction was refused.
      await waitFor(() => [o1, o2, o3].every((n) => view(n, 'o4')?.state === 'alive'), 5_000, 'o4 appears in every view');
      const tookMs = performance.now() - joinedAt;
      console.log(`[gossip] many-source flood: o4 in every view ${tookMs.toFixed(0)} ms after its join began; after ${round} flood rounds (${SOURCES * (SELF_IDS + HEARSAY)} invented members to each node per round): tables ${[o1, o2, o3].map((n) => n.allMembers().length).join('/')}, candidates ${[o1, o2, o3].map((n) => n.stats().candidates).join('/')}, refused ${[o1, o2, o3].map((n) => n.stats().candidatesRefused + n.stats().membersRejectedSource).join('/')}`);
      for (const n of [o1, o2, o3, o4]) {
        expect(n.members().map((m) => m.nodeId)).toEqual(['o1', 'o2', 'o3', 'o4']);
        expect(n.allMembers().length).toBe(4);
        expect(n.stats().candidates).toBeLessThanOrEqual(limits.maxCandidates);
      }
    } finally {
      flooding = false;
      await keepFlooding;
    }
  }, 60_000);
});

describe('finding 8: a captured signed packet replayed to another member is refused', () => {
  it('packets a sends to b, replayed at once to c, are all dropped by c (bound to b), and c keeps working', async () => {
    const keyring = (): Keyring => new Keyring([new Uint8Array(32).fill(5)]);
    const captured: { bytes: Uint8Array; to: string }[] = [];
    const a = await member('a', [], {
      keyring: keyring(),
      wrapTransport: (t: PacketTransport): PacketTransport => ({
        get localAddress() {
          return t.localAddress;
        },
        send: (bytes, address) => {
          captured.push({ bytes: Uint8Array.from(bytes), to: address });
          t.send(bytes, address);
        },
        onPacket: (handler) => t.onPacket(handler),
        close: () => t.close(),
      }),
    });
    const b = await member('b', [a.address], { keyring: keyring() });
    const c = await member('c', [a.address], { keyring: keyring() });
    await waitFor(() => [a, b, c].every((n) => n.members().length === 3), 5_000, 'keyed members converge');
    const evil = await attacker();
    let replayed = 0;
    // Replay within the sender's replay window: the per-sender window alone let these through.
    for (let round = 0; round < 20; round++) {
      captured.length = 0;
      await sleep(100);
      for (const { bytes, to } of captured) {
        if (to !== b.address) continue;
        sendTo(evil, bytes, c.address);
        replayed++;
      }
    }
    await sleep(200);
    expect(replayed).toBeGreaterThan(10);
    const drops = c.stats().dropReasons;
    expect(drops['authFailed']).toBe(replayed);
    expect([a, b, c].every((n) => n.members().length === 3)).toBe(true);
  }, 30_000);
});
