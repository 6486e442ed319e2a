/**
 * The node's request paths, measured against whichever build of the node module is
 * passed in: the current one (bench/node.ts) or another commit's (bench/compare.ts).
 */
import type { RateLimitRequest } from '../src/limiter/types.js';
import { median, type Log } from './util.js';

/** The slice of the node's public API the paths use; every commit since the node exists has it. */
export interface BenchNode {
  allow(request: RateLimitRequest): Promise<unknown>;
  allowNow(request: RateLimitRequest): unknown;
  ownerOf(key: string, action?: string): string;
  owners(): string[];
  stats(): { forwarder: { frames: number } };
  stop(options?: { graceful?: boolean }): Promise<void>;
  readonly gossipAddress: string | undefined;
  readonly grpcAddress: string | undefined;
}

export interface BenchClient {
  allow(request: RateLimitRequest): Promise<unknown>;
  close(): void;
}

export interface NodeModule {
  createNode(options?: Record<string, unknown>): Promise<BenchNode>;
  newClient(nodes: string[]): BenchClient;
}

export interface PathRates {
  /** node.allow() on a locally owned key, awaited. */
  localAllow: number;
  /** node.allowNow() on a locally owned key. */
  localNow: number;
  /** node.allow() forwarded to the owner, 5,000 in flight. */
  forwarded: number;
  /** RingLimitClient (not ring-aware) → node → owner, 5,000 in flight. */
  client: number;
  forwardsPerFrame: number;
}

const KEYS = 100_000;
const IN_FLIGHT = 5_000;
const FORWARDS = 100_000;

const request = (key: string): RateLimitRequest => ({ key, action: 'api', limit: 1e9, windowMs: 60_000 });

function ratePerSecond(count: number, startedNs: bigint): number {
  return count / (Number(process.hrtime.bigint() - startedNs) / 1e9);
}

export async function measureLocal(mod: NodeModule, rounds: number, log: Log): Promise<{ localAllow: number; localNow: number }> {
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
  const node = await mod.createNode();
  try {
    const awaited: number[] = [];
    const now: number[] = [];
    for (let round = 0; round < rounds; round++) {
      let started = process.hrtime.bigint();
      for (let i = 0; i < KEYS; i++) await node.allow(request(keys[i]!));
      awaited.push(ratePerSecond(KEYS, started));
      started = process.hrtime.bigint();
      for (let i = 0; i < KEYS; i++) node.allowNow(request(keys[i]!));
      now.push(ratePerSecond(KEYS, started));
      log(`  local round ${round + 1}: allow (awaited) ${awaited[round]!.toFixed(0)}/s, allowNow ${now[round]!.toFixed(0)}/s`);
    }
    return { localAllow: median(awaited), localNow: median(now) };
  } finally {
    await node.stop();
  }
}

export async function measureForwarded(mod: NodeModule, rounds: number, log: Log): Promise<{ forwarded: number; client: number; forwardsPerFrame: number }> {
  // Steady state: no handoff window, so first accesses do not wait for pulls (the join just happened).
  const common = { port: 0, gossipPort: 0, gossipPreset: 'test', replicas: 0, handoffWindowMs: 0 } as const;
  const a = await mod.createNode({ nodeId: 'bench-a', ...common });
  const b = await mod.createNode({ nodeId: 'bench-b', ...common, join: [a.gossipAddress!] });
  const client = mod.newClient([a.grpcAddress!]);
  try {
    for (let i = 0; i < 200 && (a.owners().length < 2 || b.owners().length < 2); i++) await new Promise((r) => setTimeout(r, 20));
    const remote: string[] = [];
    for (let i = 0; remote.length < 20_000; i++) if (a.ownerOf(`k${i}`, 'api') === 'bench-b') remote.push(`k${i}`);
    const run = async (call: (key: string) => Promise<unknown>): Promise<number> => {
      const started = process.hrtime.bigint();
      let next = 0;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < FORWARDS) await call(remote[next++ % remote.length]!);
        }),
      );
      return ratePerSecond(FORWARDS, started);
    };
    const forwards: number[] = [];
    const viaClient: number[] = [];
    const framesBefore = a.stats().forwarder.frames;
    for (let round = 0; round < rounds; round++) {
      forwards.push(await run((key) => a.allow(request(key))));
      viaClient.push(await run((key) => client.allow(request(key))));
      log(`  forwarding round ${round + 1}: a→b ${forwards[round]!.toFixed(0)}/s, client→a→b ${viaClient[round]!.toFixed(0)}/s`);
    }
    const frames = a.stats().forwarder.frames - framesBefore;
    return { forwarded: median(forwards), client: median(viaClient), forwardsPerFrame: (2 * rounds * FORWARDS) / Math.max(1, frames) };
  } finally {
    client.close();
    await Promise.all([a.stop({ graceful: false }), b.stop({ graceful: false })]);
  }
}

export async function measurePaths(mod: NodeModule, rounds: number, log: Log): Promise<PathRates> {
  return { ...(await measureLocal(mod, rounds, log)), ...(await measureForwarded(mod, rounds, log)) };
}
