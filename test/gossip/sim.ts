import { seededRng } from '../../src/common/rng.js';
import type { PresetName, SwimTimings } from '../../src/gossip/defaults.js';
import type { Keyring } from '../../src/gossip/keyring.js';
import { MemoryNetwork } from '../../src/gossip/memory-network.js';
import { ManualScheduler } from '../../src/gossip/scheduler.js';
import { SwimMembership } from '../../src/gossip/swim.js';
import type { Member, MembershipEventName, Meta } from '../../src/gossip/types.js';

export interface SimNodeOptions {
  readonly nodeId?: string;
  readonly address?: string;
  readonly meta?: Meta;
  readonly keyring?: Keyring;
  readonly generation?: number;
}

export interface EventRecord {
  readonly atMs: number;
  readonly observer: string;
  readonly event: MembershipEventName;
  readonly member: Member;
}

/** A simulated cluster: MemoryNetwork + ManualScheduler, so time is virtual and runs replay. */
export class Sim {
  readonly scheduler = new ManualScheduler();
  readonly network: MemoryNetwork;
  readonly nodes: SwimMembership[] = [];
  readonly events: EventRecord[] = [];
  private seed: number;

  constructor(
    seed = 42,
    dropProbability = 0,
    private readonly preset: PresetName = 'test',
    private readonly timings: Partial<SwimTimings> = {},
  ) {
    this.seed = seed;
    this.network = new MemoryNetwork({ scheduler: this.scheduler, rng: seededRng(seed), dropProbability, delayMs: 1, maxPacketBytes: 1400 });
  }

  get now(): number {
    return this.scheduler.clock.now();
  }

  async add(options: SimNodeOptions = {}): Promise<SwimMembership> {
    const index = this.nodes.length;
    const node = new SwimMembership({
      transport: this.network.bind(options.address),
      nodeId: options.nodeId ?? `n${index}`,
      preset: this.preset,
      timings: this.timings,
      scheduler: this.scheduler,
      rng: seededRng(this.seed * 1000 + index + this.nodes.length * 7919 + Math.floor(this.now)),
      resolveHost: async (host) => [host],
      ...(options.meta === undefined ? {} : { meta: options.meta }),
      ...(options.keyring === undefined ? {} : { keyring: options.keyring }),
      ...(options.generation === undefined ? {} : { generation: options.generation }),
    });
    for (const event of ['join', 'leave', 'fail', 'update'] as const) {
      node.on(event, (member: Member) => this.events.push({ atMs: this.now, observer: node.self.nodeId, event, member }));
    }
    await node.start();
    this.nodes.push(node);
    return node;
  }

  /** Start n nodes that all join the first one. */
  async cluster(n: number): Promise<SwimMembership[]> {
    const first = await this.add();
    const rest: SwimMembership[] = [];
    for (let i = 1; i < n; i++) rest.push(await this.add());
    await this.joinAll(rest, [first.address]);
    return [first, ...rest];
  }

  async joinAll(nodes: readonly SwimMembership[], seeds: readonly string[]): Promise<void> {
    await this.settle(Promise.all(nodes.map((n) => n.join(seeds))));
  }

  async run(ms: number): Promise<void> {
    await this.scheduler.advance(ms);
  }

  /** Advance in small steps until `predicate` holds; returns elapsed virtual ms or throws. */
  async until(predicate: () => boolean, maxMs: number, stepMs = 10): Promise<number> {
    const start = this.now;
    for (let waited = 0; waited <= maxMs; waited += stepMs) {
      if (predicate()) return this.now - start;
      await this.run(stepMs);
    }
    throw new Error(`condition not met within ${maxMs} virtual ms`);
  }

  /** Await a promise that needs virtual time to pass (join, graceful stop). */
  async settle<T>(promise: Promise<T>, maxMs = 10_000, stepMs = 10): Promise<T> {
    let done = false;
    const tracked = promise.finally(() => {
      done = true;
    });
    tracked.catch(() => {});
    for (let waited = 0; !done && waited <= maxMs; waited += stepMs) await this.run(stepMs);
    return tracked;
  }

  async stopAll(): Promise<void> {
    const stops = this.nodes.map((n) => n.stop({ graceful: false }));
    await this.run(10);
    await Promise.all(stops);
  }
}

/** Sorted ids of live members as `node` sees them. */
export function view(node: SwimMembership): string[] {
  return node.members().map((m) => m.nodeId);
}

export function converged(nodes: readonly SwimMembership[], expected: readonly string[]): boolean {
  const want = [...expected].sort().join(',');
  return nodes.every((n) => view(n).join(',') === want && n.members().every((m) => m.state === 'alive'));
}
