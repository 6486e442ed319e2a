import type { ChildProcess } from 'node:child_process';
import { RingLimitError } from '../common/errors.js';
import { RingLimitClient } from '../node/client/client.js';
import { clusterDefaults } from './options.js';
import { isRunning, sendFault, signal, startNodeProcess, waitExit, type NodeProcess } from './processes.js';
import type { ClusterControl, ClusterOptions } from './types.js';
import { pollUntil, sleep } from './wait.js';

/**
 * A cluster of real `ringlimit serve --harness` processes on 127.0.0.1 and the faults a
 * chaos scenario or a test applies to it, by node index. Every wait is bounded, and
 * close() (or the exit of this process) kills every process the cluster ever started.
 */
export class ChaosCluster implements ClusterControl {
  private readonly options: ClusterOptions;
  private readonly nodes: NodeProcess[] = [];
  /** Indices stopped on purpose (kill, stopGracefully) and not restarted yet. */
  private readonly down = new Set<number>();
  /** Every child ever spawned, restarted incarnations and failed boots included. */
  private readonly children = new Set<ChildProcess>();
  private readonly killOnExit = (): void => this.killEverything();
  private closed = false;

  private constructor(options: Partial<ClusterOptions>) {
    this.options = { ...clusterDefaults, ...options };
    process.on('exit', this.killOnExit);
  }

  /** Starts `size` nodes: n0 first, then the others joining it. Kills what it started if any fails. */
  static async start(size: number, options: Partial<ClusterOptions> = {}): Promise<ChaosCluster> {
    if (!(Number.isInteger(size) && size >= 1)) throw new RingLimitError('INVALID_ARGUMENT', `cluster size must be a positive integer, got ${size}`, 'size');
    const cluster = new ChaosCluster(options);
    try {
      cluster.nodes.push(await cluster.spawn('n0', []));
      const seed = [cluster.nodes[0]!.gossip];
      cluster.nodes.push(...(await Promise.all(Array.from({ length: size - 1 }, (_, i) => cluster.spawn(`n${i + 1}`, seed)))));
      return cluster;
    } catch (error) {
      await cluster.close();
      throw error;
    }
  }

  get size(): number {
    return this.nodes.length;
  }

  /** The process ids of the nodes that are up (a bench meters their CPU). */
  pids(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.nodes.length; i++) {
      const pid = this.node(i).child.pid;
      if (this.isUp(i) && pid !== undefined) out.push(pid);
    }
    return out;
  }

  node(i: number): NodeProcess {
    const node = this.nodes[i];
    if (node === undefined) throw new RingLimitError('INVALID_ARGUMENT', `no node ${i} in a cluster of ${this.nodes.length}`, 'index');
    return node;
  }

  grpcAddresses(): string[] {
    return this.nodes.map((n) => n.grpc);
  }

  httpAddresses(): (string | undefined)[] {
    return this.nodes.map((n) => n.http);
  }

  /** Not stopped on purpose and its process still running (a paused node is up). */
  isUp(i: number): boolean {
    return !this.down.has(i) && isRunning(this.node(i));
  }

  kill(i: number): void {
    signal(this.node(i), 'SIGKILL');
    this.down.add(i);
  }

  pause(i: number): void {
    signal(this.node(i), 'SIGSTOP');
  }

  resume(i: number): void {
    signal(this.node(i), 'SIGCONT');
  }

  async stopGracefully(i: number): Promise<void> {
    const node = this.node(i);
    this.down.add(i);
    signal(node, 'SIGTERM');
    if (!(await waitExit(node, this.options.gracefulStopTimeoutMs))) {
      signal(node, 'SIGKILL');
      throw new RingLimitError('DEADLINE_EXCEEDED', `${node.nodeId} did not stop within ${this.options.gracefulStopTimeoutMs} ms of SIGTERM; killed`);
    }
  }

  /**
   * Starts down node i again on its old ports, seeded with the nodes that are up. With none up
   * (after a crash of all) it gets no seeds and starts as a one-node cluster at once, as the
   * first node of a cluster does; the nodes restarted after it join it. Seeding it with the dead
   * nodes instead would hold its start for the gossip join timeout (10 s on the lan preset).
   */
  async restart(i: number): Promise<void> {
    const old = this.node(i);
    if (!this.down.has(i)) throw new RingLimitError('FAILED_PRECONDITION', `${old.nodeId} is up; kill or stop it before restarting it`);
    if (!(await waitExit(old, this.options.killExitTimeoutMs))) {
      throw new RingLimitError('DEADLINE_EXCEEDED', `${old.nodeId} did not exit within ${this.options.killExitTimeoutMs} ms; cannot reuse its ports`);
    }
    const join = this.nodes.filter((_, j) => j !== i && this.isUp(j)).map((n) => n.gossip);
    this.nodes[i] = await this.spawn(old.nodeId, join, { grpc: old.grpc, gossip: old.gossip });
    this.down.delete(i);
  }

  /**
   * Starts every down node at once on its old ports, each joining all the others (a whole
   * cluster brought back together, as supervisors restarting every node would).
   */
  async restartAll(): Promise<void> {
    const down = [...this.down];
    for (const i of down) {
      if (!(await waitExit(this.node(i), this.options.killExitTimeoutMs))) {
        throw new RingLimitError('DEADLINE_EXCEEDED', `${this.node(i).nodeId} did not exit within ${this.options.killExitTimeoutMs} ms; cannot reuse its ports`);
      }
    }
    const gossip = this.nodes.map((n) => n.gossip);
    const started = await Promise.all(
      down.map((i) => {
        const old = this.node(i);
        return this.spawn(old.nodeId, gossip.filter((_, j) => j !== i), { grpc: old.grpc, gossip: old.gossip });
      }),
    );
    down.forEach((i, k) => {
      this.nodes[i] = started[k]!;
      this.down.delete(i);
    });
  }

  /** Starts one more node (the next index), joining every node that is up; returns its index. */
  async add(): Promise<number> {
    const join = this.nodes.filter((_, j) => this.isUp(j)).map((n) => n.gossip);
    const index = this.nodes.length;
    this.nodes.push(await this.spawn(`n${index}`, join));
    return index;
  }

  partition(left: number[], right: number[]): void {
    this.blockBothWays(left, right);
    this.blockBothWays(right, left);
  }

  partitionOneWay(from: number[], to: number[]): void {
    const senders = from.map((i) => this.node(i));
    const receivers = to.map((j) => this.node(j));
    for (const s of senders) sendFault(s, { op: 'block', gossipTo: receivers.map((r) => r.gossip), peersTo: receivers.map((r) => r.grpc) });
    for (const r of receivers) sendFault(r, { op: 'block', gossipFrom: senders.map((s) => s.gossip), peersFrom: senders.map((s) => s.nodeId) });
  }

  heal(): void {
    for (const node of this.nodes) sendFault(node, { op: 'heal' });
  }

  clock(i: number, offsetMs: number, driftPpm: number): void {
    sendFault(this.node(i), { op: 'clock', offsetMs, driftPpm });
  }

  /** Asks node i for its stats; the answer line, or undefined if none came within timeoutMs. */
  stats(i: number, timeoutMs = 1_000): Promise<string | undefined> {
    const node = this.node(i);
    return new Promise((resolve) => {
      const onLine = (line: string) => {
        clearTimeout(timer);
        resolve(line);
      };
      const timer = setTimeout(() => {
        node.lines.off('line', onLine);
        resolve(undefined);
      }, timeoutMs);
      node.lines.once('line', onLine);
      sendFault(node, { op: 'stats' });
    });
  }

  until(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
    return pollUntil(check, timeoutMs, this.options.pollIntervalMs);
  }

  /** Members each node reports, by index: null for a node that is down, -1 for one that did not answer. */
  async membersSeen(): Promise<(number | null)[]> {
    const up = this.nodes.map((_, i) => this.isUp(i));
    const addresses = this.nodes.filter((_, i) => up[i]).map((n) => n.grpc);
    if (addresses.length === 0) return up.map(() => null);
    // A fresh client per probe: a long-lived channel to a killed node backs off and would see its restart late.
    const probe = new RingLimitClient({ nodes: addresses, timeoutMs: this.options.healthTimeoutMs, ...(this.options.apiToken === undefined ? {} : { token: this.options.apiToken }) });
    try {
      const answers = await Promise.all(addresses.map((_, k) => probe.health(k).then((h) => h.members, () => -1)));
      let k = 0;
      return up.map((isUp) => (isUp ? answers[k++]! : null));
    } finally {
      probe.close();
    }
  }

  /** Ms until membersSeen() equals `expected` (null: down, -1: no answer); throws if that takes longer than timeoutMs. */
  async waitForMembersSeen(expected: (number | null)[], timeoutMs: number): Promise<number> {
    let last: (number | null)[] = [];
    const matches = async () => {
      last = await this.membersSeen();
      return last.length === expected.length && last.every((m, i) => m === expected[i]);
    };
    const ms = await this.until(matches, timeoutMs);
    if (ms < 0) throw new RingLimitError('DEADLINE_EXCEEDED', `members seen by index did not become ${JSON.stringify(expected)} within ${timeoutMs} ms; last ${JSON.stringify(last)}`);
    return ms;
  }

  async allLiveSee(members: number): Promise<boolean> {
    return (await this.membersSeen()).every((m) => m === null || m === members);
  }

  /** Whether every node that is up has exactly `owners` owners on its ring (a joined node counts once it is active there). */
  async allLiveOwn(owners: number): Promise<boolean> {
    const up = this.nodes.map((_, i) => this.isUp(i));
    const addresses = this.nodes.filter((_, i) => up[i]).map((n) => n.grpc);
    const probe = new RingLimitClient({ nodes: addresses, timeoutMs: this.options.healthTimeoutMs });
    try {
      const answers = await Promise.all(addresses.map((_, k) => probe.health(k).then((h) => h.owners.length, () => -1)));
      return answers.every((n) => n === owners);
    } finally {
      probe.close();
    }
  }

  /** Ms until every node that is up reports `members` members; throws if that takes longer than timeoutMs. */
  async waitForMembers(members: number, timeoutMs: number): Promise<number> {
    const ms = await this.until(() => this.allLiveSee(members), timeoutMs);
    if (ms < 0) {
      const seen = await this.membersSeen();
      throw new RingLimitError('DEADLINE_EXCEEDED', `not every live node saw ${members} members within ${timeoutMs} ms; members seen by index: ${JSON.stringify(seen)}`);
    }
    return ms;
  }

  /** SIGKILLs every process this cluster started, synchronously (safe in an exit handler). */
  killEverything(): void {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT'); // a paused process dies of SIGKILL too, but let it be reaped promptly
        child.kill('SIGKILL');
      }
    }
  }

  /** Kills every process this cluster started and waits (bounded) until they are gone. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.killEverything();
    const deadline = Date.now() + this.options.killExitTimeoutMs;
    const running = () => [...this.children].some((c) => c.exitCode === null && c.signalCode === null);
    while (running() && Date.now() < deadline) await sleep(20);
    process.off('exit', this.killOnExit);
  }

  private spawn(nodeId: string, join: string[], ports?: { grpc: string; gossip: string }): Promise<NodeProcess> {
    if (this.closed) return Promise.reject(new RingLimitError('FAILED_PRECONDITION', `cluster closed; not starting ${nodeId}`));
    const o = this.options;
    return startNodeProcess({
      cliPath: o.cliPath,
      nodeId,
      join,
      gossipPreset: o.gossipPreset,
      harness: o.harness,
      serveArgs: o.serveArgs,
      bootTimeoutMs: o.bootTimeoutMs,
      ...(ports === undefined ? {} : { ports }),
      onSpawn: (child) => this.children.add(child),
    });
  }

  private blockBothWays(from: number[], to: number[]): void {
    const others = to.map((j) => this.node(j));
    const block = { gossipTo: others.map((n) => n.gossip), gossipFrom: others.map((n) => n.gossip), peersTo: others.map((n) => n.grpc), peersFrom: others.map((n) => n.nodeId) };
    for (const i of from) sendFault(this.node(i), { op: 'block', ...block });
  }
}
