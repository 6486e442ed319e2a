/**
 * SWIM at 1,000 and 4,000 members, in virtual time (MemoryNetwork + ManualScheduler, the
 * gossip tests' simulator): failure detection, false positives under loss and stalls, join
 * and leave dissemination, and gossip bytes per member. Every run is seeded and replays.
 * Standalone: npx tsc -p tsconfig.bench.json && node dist-bench/bench/gossip-scale.js [members...]
 */
import { pathToFileURL } from 'node:url';
import { seededRng } from '../src/common/rng.js';
import { defaults } from '../src/gossip/defaults.js';
import { MemoryNetwork } from '../src/gossip/memory-network.js';
import { ManualScheduler } from '../src/gossip/scheduler.js';
import { pushPullIntervalMs, retransmitLimit, suspicionBoundsMs } from '../src/gossip/scaling.js';
import { SwimMembership } from '../src/gossip/swim.js';
import type { Member, MembershipEventName } from '../src/gossip/types.js';

const PRESET = 'lan' as const;
const LAN = defaults.presets.lan;

/** A cluster in virtual time that keeps counters, not event logs (4,000 members see 16 M joins). */
export class ScaleSim {
  readonly scheduler = new ManualScheduler();
  readonly network: MemoryNetwork;
  readonly nodes: SwimMembership[] = [];
  /** Live members each node sees, itself excluded, from its own events. */
  readonly liveSeen = new Map<string, number>();
  /** Per watched member: when each observer reported it, by event. */
  private readonly watched = new Map<string, Map<string, number>>();
  private watchedEvent: MembershipEventName = 'fail';
  /** fail events about members that were not crashed (false positives). */
  falseFailures = 0;
  readonly crashed = new Set<string>();

  constructor(
    private readonly seed: number,
    dropProbability = 0,
  ) {
    this.network = new MemoryNetwork({ scheduler: this.scheduler, rng: seededRng(seed), dropProbability, delayMs: 1, maxPacketBytes: defaults.limits.maxPacketBytes });
  }

  get now(): number {
    return this.scheduler.clock.now();
  }

  async add(): Promise<SwimMembership> {
    const index = this.nodes.length;
    const nodeId = `m${index}`;
    const node = new SwimMembership({
      transport: this.network.bind(),
      nodeId,
      preset: PRESET,
      scheduler: this.scheduler,
      rng: seededRng(this.seed * 100_003 + index),
      resolveHost: async (host) => [host],
    });
    this.liveSeen.set(nodeId, 0);
    const count = (event: MembershipEventName) => (member: Member) => {
      const delta = event === 'join' ? 1 : event === 'fail' || event === 'leave' ? -1 : 0;
      if (delta !== 0) this.liveSeen.set(nodeId, this.liveSeen.get(nodeId)! + delta);
      if (event === 'fail' && !this.crashed.has(member.nodeId)) this.falseFailures++;
      if (event === this.watchedEvent) this.watched.get(member.nodeId)?.set(nodeId, this.now);
    };
    for (const event of ['join', 'leave', 'fail'] as const) node.on(event, count(event));
    await node.start();
    this.nodes.push(node);
    return node;
  }

  /** Records when each observer reports `event` about `nodeId` from now on. */
  watch(nodeId: string, event: MembershipEventName): Map<string, number> {
    const seen = new Map<string, number>();
    this.watchedEvent = event;
    this.watched.set(nodeId, seen);
    return seen;
  }

  async run(ms: number): Promise<void> {
    await this.scheduler.advance(ms);
  }

  /** Awaits a promise that needs virtual time to pass (a graceful stop), for at most `maxMs`. */
  async settle(promise: Promise<unknown>, maxMs = 30_000): Promise<void> {
    let done = false;
    void promise.finally(() => (done = true)).catch(() => undefined);
    for (let waited = 0; !done && waited <= maxMs; waited += 10) await this.run(10);
  }

  /** Runs until `done()` or `maxMs`; returns the virtual ms it took, or undefined. */
  async until(done: () => boolean, maxMs: number, stepMs = 20): Promise<number | undefined> {
    const start = this.now;
    for (let waited = 0; waited <= maxMs; waited += stepMs) {
      if (done()) return this.now - start;
      await this.run(stepMs);
    }
    return undefined;
  }

  running(): SwimMembership[] {
    return this.nodes.filter((n) => !this.crashed.has(n.self.nodeId));
  }

  converged(expected: number): boolean {
    return this.running().every((n) => this.liveSeen.get(n.self.nodeId) === expected - 1);
  }

  bytesSent(): number {
    let sum = 0;
    for (const n of this.running()) sum += n.stats().bytesSent;
    return sum;
  }
}

/** n members that joined in waves through members already in; converged. */
export async function buildCluster(n: number, seed: number, log: (line: string) => void, dropProbability = 0): Promise<ScaleSim> {
  const sim = new ScaleSim(seed, dropProbability);
  const rng = seededRng(seed);
  await sim.add();
  const wave = Math.max(20, Math.ceil(n / 20));
  while (sim.nodes.length < n) {
    const joined = sim.nodes.length;
    const batch: Promise<void>[] = [];
    for (let i = 0; i < wave && sim.nodes.length < n; i++) {
      const node = await sim.add();
      const seeds = [0, 1, 2].map(() => sim.nodes[rng.int(joined)]!.address);
      batch.push(node.join([...new Set(seeds)]).then(() => undefined));
    }
    const settled = Promise.allSettled(batch);
    let done = false;
    void settled.then(() => (done = true));
    for (let i = 0; !done && i < 500; i++) await sim.run(20);
    if (sim.nodes.length % (wave * 5) === 0 || sim.nodes.length === n) log(`gossip: ${n} members, ${sim.nodes.length} started`);
  }
  const took = await sim.until(() => sim.converged(n), 120_000, 100);
  if (took === undefined) throw new Error(`${n} members did not converge in 120 virtual s`);
  // Let the join gossip drain before measuring.
  await sim.run(5_000);
  return sim;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const kb = (bytes: number): string => `${(bytes / 1000).toFixed(2)} KB`;

interface ScaleResult {
  members: number;
  steadyBytesPerMemberPerS: number;
  churnBytesPerMemberPerS: number;
  detections: number[];
  firstDetections: number[];
  joinAllMs: number[];
  leaveAllMs: number[];
  falseAt1: { failures: number; suspicions: number; seconds: number };
  falseAt5: { failures: number; suspicions: number; seconds: number };
  falseStalls: { failures: number; suspicions: number; stalls: number };
  pushPullBytes: number;
  pushPullPackets: number;
  digests: number;
  digestsMatched: number;
  faults: boolean;
}

/** `faults`: also measure churn bytes and false positives under loss and stalls (slow at 4,000 members: about 10 virtual minutes' worth of work). */
async function measure(n: number, seeds: number[], victimsPerSeed: number, log: (line: string) => void, faults = true): Promise<ScaleResult> {
  const result: ScaleResult = {
    members: n,
    steadyBytesPerMemberPerS: 0,
    churnBytesPerMemberPerS: 0,
    detections: [],
    firstDetections: [],
    joinAllMs: [],
    leaveAllMs: [],
    falseAt1: { failures: 0, suspicions: 0, seconds: 0 },
    falseAt5: { failures: 0, suspicions: 0, seconds: 0 },
    falseStalls: { failures: 0, suspicions: 0, stalls: 0 },
    pushPullBytes: 0,
    pushPullPackets: 0,
    digests: 0,
    digestsMatched: 0,
    faults,
  };
  const steady: number[] = [];
  const churn: number[] = [];
  for (const seed of seeds) {
    const started = performance.now();
    const sim = await buildCluster(n, seed, log);
    log(`gossip: ${n} members converged (seed ${seed}) in ${((performance.now() - started) / 1000).toFixed(0)} s real`);
    const rng = seededRng(seed * 7);

    // Steady state: bytes sent per member per second over 20 virtual s (push-pull included).
    let before = sim.bytesSent();
    const digestsBefore = sim.running().reduce((a, node) => a + node.stats().syncDigestsSent, 0);
    const matchedBefore = sim.running().reduce((a, node) => a + node.stats().syncDigestsMatched, 0);
    await sim.run(20_000);
    steady.push((sim.bytesSent() - before) / n / 20);

    // Push-pull opens with a digest; the full state goes only where views differ. What share matched:
    const digestsSent = sim.running().reduce((a, node) => a + node.stats().syncDigestsSent, 0) - digestsBefore;
    const digestsMatched = sim.running().reduce((a, node) => a + node.stats().syncDigestsMatched, 0) - matchedBefore;
    result.digests += digestsSent;
    result.digestsMatched += digestsMatched;
    // And what a full state costs at this size: a member sends its own when it (re)joins through a peer.
    const probe = sim.nodes[1]!;
    const bytesBefore = probe.stats().bytesSent;
    const packetsBefore = probe.stats().packetsSent;
    void probe.join([sim.nodes[2]!.address]);
    await sim.run(1);
    // The state goes out in one turn: the bytes sent in that millisecond are its chunks (plus a ping at most).
    result.pushPullBytes = probe.stats().bytesSent - bytesBefore;
    result.pushPullPackets = probe.stats().packetsSent - packetsBefore;
    await sim.run(1_000);

    // Crash detection.
    for (let v = 0; v < victimsPerSeed; v++) {
      const victim = sim.running()[1 + rng.int(sim.running().length - 1)]!;
      const id = victim.self.nodeId;
      const seen = sim.watch(id, 'fail');
      const crashedAt = sim.now;
      sim.crashed.add(id);
      await victim.stop({ graceful: false });
      const observers = sim.running().length;
      const took = await sim.until(() => seen.size >= observers, 60_000, 20);
      const times = [...seen.values()].map((t) => t - crashedAt).sort((a, b) => a - b);
      if (took === undefined) log(`gossip: ${n} members: ${id} declared failed by only ${seen.size} of ${observers} in 60 s`);
      result.detections.push(...times);
      result.firstDetections.push(times[0] ?? Infinity);
      result.detections.push(...Array.from({ length: observers - seen.size }, () => Infinity));
      log(`gossip: ${n} members: crash ${v + 1}/${victimsPerSeed} (seed ${seed}) seen failed by all in ${took === undefined ? '> 60 s' : s(took)}; first ${s(times[0] ?? NaN)}`);
      await sim.run(2_000);
    }

    // A join, and a graceful leave, known to all.
    const joiner = await sim.add();
    const joinedAt = sim.now;
    const seenJoin = sim.watch(joiner.self.nodeId, 'join');
    void joiner.join([sim.nodes[0]!.address]);
    const expected = sim.running().length - 1;
    const joinTook = await sim.until(() => seenJoin.size >= expected, 30_000, 10);
    result.joinAllMs.push(joinTook ?? Infinity);
    const leaver = sim.running()[2]!;
    const seenLeave = sim.watch(leaver.self.nodeId, 'leave');
    const leftAt = sim.now;
    sim.crashed.add(leaver.self.nodeId); // not a false failure if some see it fail
    const stopping = leaver.stop();
    const leaveTook = await sim.until(() => seenLeave.size >= sim.running().length, 30_000, 10);
    await sim.settle(stopping);
    result.leaveAllMs.push(leaveTook ?? Infinity);
    log(`gossip: ${n} members: join known to all in ${s(joinTook ?? Infinity)}, leave in ${s(leaveTook ?? Infinity)} (${s(leftAt - joinedAt)} apart)`);

    if (!faults) {
      await sim.settle(Promise.all(sim.running().map((node) => node.stop({ graceful: false }))));
      continue;
    }
    // Churn: a member joins and another leaves every second for 10 s; bytes per member per second.
    before = sim.bytesSent();
    for (let i = 0; i < 10; i++) {
      const fresh = await sim.add();
      void fresh.join([sim.nodes[0]!.address]);
      const going = sim.running()[3 + rng.int(sim.running().length - 4)]!;
      sim.crashed.add(going.self.nodeId);
      const leaving = going.stop();
      await sim.run(1_000);
      await sim.settle(leaving);
    }
    churn.push((sim.bytesSent() - before) / sim.running().length / 10);

    // False positives: 1 % and 5 % loss, then members whose event loop stalls.
    for (const [loss, into] of [
      [0.01, result.falseAt1],
      [0.05, result.falseAt5],
    ] as const) {
      await sim.run(5_000); // let churn settle
      sim.network.dropProbability = loss;
      const falseBefore = sim.falseFailures;
      const suspicionsBefore = sim.running().reduce((a, node) => a + node.stats().suspicionsRaised, 0);
      await sim.run(30_000);
      into.failures += sim.falseFailures - falseBefore;
      into.suspicions += sim.running().reduce((a, node) => a + node.stats().suspicionsRaised, 0) - suspicionsBefore;
      into.seconds += 30;
      sim.network.dropProbability = 0;
      log(`gossip: ${n} members: ${loss * 100} % loss for 30 s: ${sim.falseFailures - falseBefore} false failures`);
    }
    // Stalls: 5 members at a time stop answering for 250 ms (a long GC pause), 20 times.
    const falseBefore = sim.falseFailures;
    const suspicionsBefore = sim.running().reduce((a, node) => a + node.stats().suspicionsRaised, 0);
    for (let i = 0; i < 20; i++) {
      const stalled = Array.from({ length: 5 }, () => sim.running()[rng.int(sim.running().length)]!.address);
      const everyone = sim.running().map((node) => node.address);
      sim.network.partition(stalled, everyone);
      await sim.run(250);
      sim.network.heal();
      result.falseStalls.stalls += stalled.length;
      await sim.run(1_000);
    }
    result.falseStalls.failures += sim.falseFailures - falseBefore;
    result.falseStalls.suspicions += sim.running().reduce((a, node) => a + node.stats().suspicionsRaised, 0) - suspicionsBefore;
    log(`gossip: ${n} members: 100 stalls of 250 ms: ${sim.falseFailures - falseBefore} false failures`);
    await sim.settle(Promise.all(sim.running().map((node) => node.stop({ graceful: false }))));
  }
  result.steadyBytesPerMemberPerS = steady.reduce((a, b) => a + b, 0) / steady.length;
  result.churnBytesPerMemberPerS = churn.length === 0 ? NaN : churn.reduce((a, b) => a + b, 0) / churn.length;
  result.faults = faults;
  return result;
}

function row(r: ScaleResult): string[] {
  const d = [...r.detections].sort((a, b) => a - b);
  const first = [...r.firstDetections].sort((a, b) => a - b);
  return [
    `${r.members}`,
    `${s(quantile(d, 0.5))} / ${s(quantile(d, 0.99))} / ${s(d[d.length - 1]!)}`,
    `${s(quantile(first, 0.5))}`,
    `${s(Math.max(...r.joinAllMs))} / ${s(Math.max(...r.leaveAllMs))}`,
    r.faults ? `${r.falseAt1.failures} (${r.falseAt1.suspicions} suspicions)` : 'not run',
    r.faults ? `${r.falseAt5.failures} (${r.falseAt5.suspicions} suspicions)` : 'not run',
    r.faults ? `${r.falseStalls.failures} in ${r.falseStalls.stalls} stalls (${r.falseStalls.suspicions} suspicions)` : 'not run',
    `${kb(r.steadyBytesPerMemberPerS)}/s`,
    r.faults ? `${kb(r.churnBytesPerMemberPerS)}/s` : 'not run',
    `every ${s(pushPullIntervalMs(LAN.pushPullIntervalMs, r.members))}; digests matched ${r.digestsMatched} of ${r.digests}; full state ${kb(r.pushPullBytes)} in ${r.pushPullPackets} packets`,
  ];
}

/**
 * 1,000 members by default. 4,000 (`GOSSIP_FAULTS=1 node --max-old-space-size=16384
 * dist-bench/bench/gossip-scale.js 1000 4000`) takes about 6 GiB of heap and 25 minutes:
 * every simulated member tracks every other (16 M member entries).
 */
export async function runGossipScaleBench(log: (line: string) => void, sizes: number[] = [1000]): Promise<string> {
  const results: ScaleResult[] = [];
  for (const n of sizes) {
    const r = n >= 2000 ? await measure(n, [1], 2, log, process.env['GOSSIP_FAULTS'] === '1') : await measure(n, [1, 2], 4, log);
    log(`gossip: ${n} members done: ${row(r).join(' | ')}`);
    results.push(r);
  }
  const header = ['members', 'crash: every member knows, p50 / p99 / worst', 'first to know, p50', 'join / leave known to all (worst)', 'false failures, 1 % loss', '5 % loss', 'stalls of 250 ms', 'gossip sent per member, steady', 'during churn (1 join + 1 leave /s)', 'push-pull, steady (digest first)'];
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const formulas = sizes
    .map((n) => {
      const b = suspicionBoundsMs(n, LAN.suspicionMinMs, LAN.suspicionMaxMultiplier);
      return `${n} members: suspicion ${s(b.minMs)}–${s(b.maxMs)}, each update piggybacked ${retransmitLimit(n, LAN.retransmitMultiplier)} times, push-pull every ${s(pushPullIntervalMs(LAN.pushPullIntervalMs, n))}`;
    })
    .join('; ');
  return [
    '### Gossip at scale (virtual time)',
    '',
    `SWIM with the LAN preset (probe every ${LAN.probeIntervalMs} ms, gossip every ${LAN.gossipIntervalMs} ms to ${LAN.gossipFanout}) over the in-memory network (1 ms one way, 1,400-byte packets), seeded. 1,000 members: 2 seeds × 4 crashes, then 10 s of churn, 30 s at 1 % and 30 s at 5 % loss, and 100 stalls (5 members at a time drop every packet for 250 ms, harsher than a real stall, whose packets wait in the socket buffer); 2,000 and more: 1 seed × 2 crashes, ${process.env['GOSSIP_FAULTS'] === '1' ? 'with the same fault runs (GOSSIP_FAULTS=1; about 25 real minutes at 4,000 members)' : 'the fault runs left out unless GOSSIP_FAULTS=1 (they take many real minutes per virtual minute there)'}. Detection counts, per crash, the time until each live member declared the crashed one failed. The formulas (src/gossip/scaling.ts): ${formulas}.`,
    '',
    line(header),
    line(header.map(() => '---')),
    ...results.map((r) => line(row(r))),
  ].join('\n');
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  runGossipScaleBench((l) => console.log(`[bench gossip] ${l}`), sizes.length > 0 ? sizes : undefined).then(
    (section) => console.log(`\n${section}`),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
