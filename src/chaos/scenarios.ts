import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuHog, floodPeerPorts, httpBatchFlood, idleConnections, loopbackHosts, p99, silentCalls, slowReaders, wellBehavedCallerProcess } from './intruders.js';
import type { Accuracy } from './model.js';
import type { ClusterControl, FaultMarks, Scenario, ScenarioOutcome, ScenarioRun } from './types.js';
import { sleep } from './wait.js';

/** Node indices from..to-1. */
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

const noOver = (a: Accuracy) => a.overUnits === 0 && a.errors === 0;

/**
 * Hot-key mode's stated bound, for the load measured: a copy lags the owner by one sync
 * (globalSyncMs, 10 ms) plus one transit, so over-admission per key is at most what the
 * non-owners admit in that time. Taken generously as 100 ms on a shared 2-core machine.
 */
const HOT_KEY_LAG_MS = 100;
export const hotKeyBoundUnits = (run: ScenarioRun): number => run.keyCount * Math.ceil(((run.ratePerSec / run.keyCount) * (run.nodes - 1)) / run.nodes * (HOT_KEY_LAG_MS / 1000));

/**
 * A split passes as kill-owners does, ≤ 1 % over-admission, besides reconverging within 5 s of
 * the heal: each side spends only its share of each key's remaining allowance, not a whole limit.
 */
const splitPass = (a: Accuracy, o: ScenarioOutcome): boolean => a.overPct <= 1 && o.stableMs !== undefined && o.stableMs >= 0 && o.stableMs <= 5_000;

/** A partition into two halves (gossip and peer traffic) for 6 s, then the heal: partition and partition-with-room. */
async function splitInTwo(cluster: ClusterControl, marks: FaultMarks): Promise<ScenarioOutcome> {
  const half = Math.floor(cluster.size / 2);
  cluster.partition(range(0, half), range(half, cluster.size));
  await sleep(6_000);
  cluster.heal();
  marks.faultEnd();
  const stableMs = await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
  return { stableMs };
}

/** kill -9 of owners one at a time, each restarted: the body of kill-owners and busy-kill-owners. */
async function killOwnersInTurn(cluster: ClusterControl, marks: FaultMarks): Promise<ScenarioOutcome> {
  // One at a time: with one replica, two simultaneous deaths lose the keys both held.
  let detectMs = 0;
  let stableMs = 0;
  for (const i of [cluster.size - 1, 1]) {
    cluster.kill(i);
    const detected = await cluster.until(() => cluster.allLiveSee(cluster.size - 1), 10_000);
    detectMs = detected < 0 ? -1 : Math.max(detectMs, detected);
    await cluster.restart(i);
    const stable = await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
    stableMs = stable < 0 ? -1 : Math.max(stableMs, stable);
    // Let the restarted node become active on every ring and receive its replica copies
    // before the next failure: a second death before that is a double failure, beyond one
    // replica. Waited for, not timed: a cold process on a busy machine takes seconds.
    await cluster.until(() => cluster.allLiveOwn(cluster.size), 15_000);
    await sleep(2_000);
  }
  marks.faultEnd();
  return { detectMs, stableMs };
}

/** A fresh cluster key file in `dir`, for a scenario's nodes. */
function writeClusterKey(dir: string): string {
  const path = join(dir, 'cluster.key');
  writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return path;
}

/** The API token of hostile-callers' nodes, its load and its bystander (the attackers of findings 1 and 2 have none). */
const HOSTILE_TOKEN = randomBytes(24).toString('hex');
/** How long hostile-callers' attack runs, and its bystander's steady measurement before it. */
const HOSTILE_ATTACK_MS = 10_000;
const HOSTILE_STEADY_MS = 4_000;
/**
 * Each of hostile-callers' 32 HTTP flooders posts its next batch when its last is answered,
 * and at most every 200 ms: up to 160 batches (120 MB) a second. Measured on the shared 2-core
 * machine with the whole attack running, 117–133 batches a second reached the node for 15–17 %
 * of a core in the harness, where the fetch() flooders they replace got 50–72 a second there
 * for 30–38 % (alone against the cluster, 88–259 a second for 41–76 % of a core).
 */
const HOSTILE_FLOOD_INTERVAL_MS = 200;

function writeToken(dir: string): string {
  const path = join(dir, 'api.token');
  writeFileSync(path, `${HOSTILE_TOKEN}\n`, { mode: 0o600 });
  return path;
}

/** How often crash-all's nodes write their snapshots. */
const CRASH_SNAPSHOT_INTERVAL = '1s';

export const scenarios: Record<string, Scenario> = {
  steady: {
    name: 'steady state, concurrent clients on every node',
    target: '0 over-admission',
    async run() {
      return {};
    },
    pass: noOver,
  },
  'kill-owners': {
    name: 'kill -9 of owners under load (one node at a time, two rounds), each restarted',
    target: 'over-admission ≤ 1 % of the affected limits; 0 client errors after client retry',
    run: killOwnersInTurn,
    pass: (a, o) => a.overPct <= 1 && a.errors === 0 && (o.detectMs ?? -1) >= 0,
  },
  'busy-kill-owners': {
    name: 'kill-owners on a busy machine: a process spinning on one of the 2 cores the whole run',
    target: 'as kill-owners: over-admission ≤ 1 %; 0 client errors',
    async run(cluster, marks) {
      const hog = cpuHog();
      try {
        return await killOwnersInTurn(cluster, marks);
      } finally {
        hog.stop();
      }
    },
    pass: (a, o) => a.overPct <= 1 && a.errors === 0 && (o.detectMs ?? -1) >= 0,
  },
  'kill-two': {
    name: 'kill -9 of two nodes at once (`--replicas 2`), left down',
    target: '0 over-admission; 0 client errors',
    serveArgs: () => ['--replicas', '2'],
    async run(cluster, marks) {
      cluster.kill(cluster.size - 1);
      cluster.kill(1);
      const detectMs = await cluster.until(() => cluster.allLiveSee(cluster.size - 2), 10_000);
      marks.faultEnd();
      return { detectMs };
    },
    pass: (a, o) => noOver(a) && (o.detectMs ?? -1) >= 0,
  },
  'crash-all': {
    name: `kill -9 of every node at once, then a restart on the same data dirs (snapshots every ${CRASH_SNAPSHOT_INTERVAL})`,
    target: 'over-admission ≤ 1 % (the keys were used up before the crash); client errors only while no node runs',
    serveArgs: (dataDir) => ['--data-dir', dataDir, '--snapshot-interval', CRASH_SNAPSHOT_INTERVAL],
    async run(cluster, marks) {
      for (let i = 0; i < cluster.size; i++) cluster.kill(i);
      await cluster.restartAll();
      marks.faultEnd();
      const stableMs = await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
      return { stableMs };
    },
    pass: (a, o) => a.overPct <= 1 && (o.stableMs ?? -1) >= 0,
  },
  'crash-all-one-by-one': {
    name: `kill -9 of every node at once, then a restart one node at a time on the same data dirs (snapshots every ${CRASH_SNAPSHOT_INTERVAL}), 3 s apart`,
    target: 'over-admission ≤ 1 % (a node back alone spends only its share and refuses keys it holds nothing for); client errors only while no node runs',
    serveArgs: (dataDir) => ['--data-dir', dataDir, '--snapshot-interval', CRASH_SNAPSHOT_INTERVAL],
    async run(cluster, marks) {
      for (let i = 0; i < cluster.size; i++) cluster.kill(i);
      // The first back is alone: it owns every key, and decides them while the others are out.
      for (let i = 0; i < cluster.size; i++) {
        await cluster.restart(i);
        if (i < cluster.size - 1) await sleep(3_000);
      }
      marks.faultEnd();
      const stableMs = await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
      return { stableMs };
    },
    pass: (a, o) => a.overPct <= 1 && (o.stableMs ?? -1) >= 0,
  },
  'slow-readers': {
    name: 'a flood of large AllowBatch calls whose answers are never read: 100 connections × 10 calls × 10,000 requests at one node',
    target: '0 over-admission; 0 client errors',
    async run(cluster, marks) {
      await slowReaders(cluster.grpcAddresses()[0]!, 100, 10, 10_000, 3_000);
      marks.faultEnd();
      return {};
    },
    pass: noOver,
  },
  'stranger-flood': {
    name: "a process that is not a member floods every node's peer port with states that would reset every key",
    target: '0 over-admission; 0 client errors; every stranger stream refused',
    // With a cluster key: without one, a process on a member's host may pose as that member (docs/security.md).
    serveArgs: (dataDir) => ['--gossip-key-file', writeClusterKey(dataDir)],
    async run(cluster, marks, context) {
      const addresses = cluster.grpcAddresses();
      const refused = await floodPeerPorts(addresses, 'n1', context, 3_000);
      marks.faultEnd();
      return { refusedStreams: refused };
    },
    pass: (a, o) => noOver(a) && (o.refusedStreams ?? 0) > 0,
  },
  'hostile-callers': {
    name: 'issue 28 findings 1–3 at one node (cluster key, API tokens, HTTP): 12 hosts × 2 HTTP/2 connections × 100 token-less calls that never send a body; 12 hosts × 80 idle TCP connections to the gRPC port and 12 × 80 HTTP slowloris connections; 32 token holders posting 10,000-item batches to /v1/allow-batch (each at most 5 a second) — for 10 s',
    target: 'a bystander (unary Allow every 10 ms on the attacked node) keeps its p99 under 3 × its steady figure with 0 errors while the attack runs; 0 over-admission; 0 client errors',
    load: { apiToken: HOSTILE_TOKEN },
    // The connection bounds lowered (64 per host, 2,000 in all) so that a 2-core machine can exceed them; the defaults are 1,000 and 10,000.
    serveArgs: (dataDir) => ['--gossip-key-file', writeClusterKey(dataDir), '--api-token-file', writeToken(dataDir), '--http-port', '0', '--caller-limit', 'maxConnectionsPerHost=64', '--caller-limit', 'maxConnections=2000'],
    async run(cluster, marks) {
      const grpcAddress = cluster.grpcAddresses()[0]!;
      const httpAddress = cluster.httpAddresses()[0]!;
      const steady = await wellBehavedCallerProcess(grpcAddress, HOSTILE_TOKEN, HOSTILE_STEADY_MS);
      const attack = Promise.all([
        silentCalls(grpcAddress, loopbackHosts(10, 12), 2, HOSTILE_ATTACK_MS),
        idleConnections(grpcAddress, loopbackHosts(30, 12), 80, HOSTILE_ATTACK_MS),
        idleConnections(httpAddress, loopbackHosts(50, 12), 80, HOSTILE_ATTACK_MS, 'POST /v1/allow-batch HTTP/1.1\r\nHost: ringlimit\r\n'),
        httpBatchFlood(httpAddress, HOSTILE_TOKEN, 32, 10_000, HOSTILE_ATTACK_MS, HOSTILE_FLOOD_INTERVAL_MS),
      ]);
      // The attack's first second is its ramp (connections opening): measured from then on.
      await sleep(1_000);
      const during = await wellBehavedCallerProcess(grpcAddress, HOSTILE_TOKEN, HOSTILE_ATTACK_MS - 1_500);
      await attack;
      marks.faultEnd();
      return { bystander: { steadyP99Ms: p99(steady.latenciesMs), attackP99Ms: p99(during.latenciesMs), steadyCalls: steady.latenciesMs.length, attackCalls: during.latenciesMs.length, errors: steady.errors + during.errors } };
    },
    pass: (a, o) => noOver(a) && a.errors === 0 && o.bystander !== undefined && o.bystander.errors === 0 && o.bystander.attackP99Ms <= 3 * o.bystander.steadyP99Ms,
  },
  'rolling-restart': {
    name: 'rolling restart of every node (SIGTERM, then start again)',
    target: 'over-admission ≤ 1 %',
    async run(cluster, marks) {
      for (let i = 0; i < cluster.size; i++) {
        await cluster.stopGracefully(i);
        await cluster.restart(i);
        await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
      }
      marks.faultEnd();
      return {};
    },
    pass: (a) => a.overPct <= 1,
  },
  sigstop: {
    name: 'SIGSTOP one node for 2 s, then SIGCONT',
    target: 'no lasting split; over-admission ≤ 1 %',
    async run(cluster, marks) {
      const i = cluster.size - 1;
      cluster.pause(i);
      await sleep(2_000);
      cluster.resume(i);
      marks.faultEnd();
      const stableMs = await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
      return { stableMs };
    },
    pass: (a, o) => a.overPct <= 1 && o.stableMs !== undefined && o.stableMs >= 0,
  },
  partition: {
    name: 'network partition (gossip and peer traffic) into two sides, then heal',
    target: 'over-admission ≤ 1 % of the affected limits (each side spends only its share); reconverges ≤ 5 s after heal',
    run: splitInTwo,
    // Every key is used on both sides, so the affected limits are all the keys' limits: overPct.
    pass: splitPass,
  },
  'partition-one-way': {
    name: 'one-way partition: one node cannot send to the others (gossip and peer traffic), then heal',
    target: 'over-admission ≤ 1 % of the affected limits (each side spends only its share); reconverges ≤ 5 s after heal',
    async run(cluster, marks) {
      const last = cluster.size - 1;
      cluster.partitionOneWay([last], range(0, last));
      await sleep(4_000);
      cluster.heal();
      marks.faultEnd();
      const stableMs = await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
      return { stableMs };
    },
    pass: splitPass,
  },
  'partition-with-room': {
    name: 'network partition into two sides while every key still has room (limit 250: keys fill during the split), then heal',
    target: 'over-admission ≤ 1 % of the affected limits; under-admission during the split reported (each side refuses once its share is spent); reconverges ≤ 5 s after heal',
    // 2,000/s over 100 keys fill a limit of 250 about 12 s in: 4 s into the split, so each side spends its share of real room.
    load: { limit: 250 },
    run: splitInTwo,
    pass: splitPass,
  },
  'hot-key': {
    name: 'hot keys in hot-key mode (global: true): 10 keys, each load generator asking its own node (not the owners)',
    target: `over-admission ≤ what the non-owners admit in ${HOT_KEY_LAG_MS} ms (one sync + transit) per key; 0 client errors`,
    // Limits reached half-way through the run, so every key is contested at its limit by every node.
    load: { keyCount: 10, limit: 1_000, global: true },
    async run() {
      return {};
    },
    pass: (a, _o, run) => a.errors === 0 && a.overUnits <= hotKeyBoundUnits(run),
  },
  leases: {
    name: 'leases on (`--leases`, slices for keys forwarded at 2/s or more), each load generator asking its own node (mostly not the owners): a kill -9 and restart, a partition into two sides and its heal, a graceful restart',
    target: '0 over-admission (a slice is consumed and replicated at its owner before it is granted); under-admission reported',
    // Limits reached about 20 s in: keys are contested while the faults run, with slices out.
    load: { limit: 400, ringAware: false },
    serveArgs: () => ['--leases', '--lease', 'thresholdPerSec=2'],
    async run(cluster, marks) {
      const last = cluster.size - 1;
      cluster.kill(last);
      const detectMs = await cluster.until(() => cluster.allLiveSee(cluster.size - 1), 10_000);
      await cluster.restart(last);
      await cluster.until(() => cluster.allLiveOwn(cluster.size), 15_000);
      await sleep(1_000);
      const half = Math.floor(cluster.size / 2);
      cluster.partition(range(0, half), range(half, cluster.size));
      await sleep(4_000);
      cluster.heal();
      await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
      await cluster.stopGracefully(1);
      await cluster.restart(1);
      marks.faultEnd();
      const stableMs = await cluster.until(() => cluster.allLiveSee(cluster.size), 15_000);
      return { detectMs, stableMs };
    },
    pass: (a) => a.overUnits === 0,
  },
  skew: {
    name: 'clock skew: node clocks offset by up to ±5 s (and drifting 100 ppm)',
    target: '0 over-admission in steady state',
    async run(cluster, marks) {
      for (const i of range(0, cluster.size)) cluster.clock(i, ((i % 3) - 1) * 5_000, i % 2 === 0 ? 100 : -100);
      marks.faultEnd();
      return {};
    },
    pass: noOver,
  },
};

export const QUICK = ['steady', 'kill-owners', 'skew', 'hot-key'];
export const FULL = [
  'steady',
  'kill-owners',
  'rolling-restart',
  'sigstop',
  'partition',
  'partition-one-way',
  'partition-with-room',
  'skew',
  'hot-key',
  'leases',
  'busy-kill-owners',
  'kill-two',
  'crash-all',
  'crash-all-one-by-one',
  'stranger-flood',
  'slow-readers',
  'hostile-callers',
];
