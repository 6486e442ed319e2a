/**
 * The node's paths: a locally owned key through createNode().allow() against the bare
 * core in the same process, and decisions forwarded to another node (batched over one
 * gRPC stream) and through the public API client.
 */
import { ManualClock } from '../src/common/clock.js';
import { LimiterStore } from '../src/limiter/store.js';
import { RingLimitClient } from '../src/node/api/client.js';
import { createNode } from '../src/node/node.js';
import { fmtRate, median, table, type Log } from './util.js';

const KEYS = 100_000;
const ROUNDS = 5;

async function localAllow(log: Log): Promise<{ core: number; node: number; now: number }> {
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
  const store = new LimiterStore(new ManualClock(), { initialKeys: KEYS });
  const node = await createNode();
  try {
    const core: number[] = [];
    const viaNode: number[] = [];
    const viaNow: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let started = process.hrtime.bigint();
      for (let i = 0; i < KEYS; i++) store.allow({ key: keys[i]!, action: 'api', limit: 1e9, windowMs: 60_000 });
      core.push(KEYS / (Number(process.hrtime.bigint() - started) / 1e9));
      started = process.hrtime.bigint();
      for (let i = 0; i < KEYS; i++) await node.allow({ key: keys[i]!, action: 'api', limit: 1e9, windowMs: 60_000 });
      viaNode.push(KEYS / (Number(process.hrtime.bigint() - started) / 1e9));
      started = process.hrtime.bigint();
      for (let i = 0; i < KEYS; i++) node.allowNow({ key: keys[i]!, action: 'api', limit: 1e9, windowMs: 60_000 });
      viaNow.push(KEYS / (Number(process.hrtime.bigint() - started) / 1e9));
      log(`  round ${round + 1}: core ${fmtRate(core[round]!)}, node.allow (awaited) ${fmtRate(viaNode[round]!)}, node.allowNow ${fmtRate(viaNow[round]!)}`);
    }
    return { core: median(core), node: median(viaNode), now: median(viaNow) };
  } finally {
    await node.stop();
  }
}

async function forwarded(log: Log): Promise<{ forward: number; client: number; framesPerDecision: number }> {
  // Steady state: no handoff window, so first accesses do not wait for pulls (the join just happened).
  const common = { port: 0, gossipPort: 0, gossipPreset: 'test', replicas: 0, handoffWindowMs: 0 } as const;
  const a = await createNode({ nodeId: 'bench-a', ...common });
  const b = await createNode({ nodeId: 'bench-b', ...common, join: [a.gossipAddress!] });
  const client = new RingLimitClient({ nodes: [a.grpcAddress!], preferFirst: true });
  try {
    for (let i = 0; i < 200 && (a.owners().length < 2 || b.owners().length < 2); i++) await new Promise((r) => setTimeout(r, 20));
    const remote: string[] = [];
    for (let i = 0; remote.length < 20_000; i++) if (a.ownerOf(`k${i}`, 'api') === 'bench-b') remote.push(`k${i}`);
    const inFlight = 5_000;
    const total = 100_000;
    const run = async (call: (key: string) => Promise<unknown>): Promise<number> => {
      const started = process.hrtime.bigint();
      let next = 0;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < total) await call(remote[next++ % remote.length]!);
        }),
      );
      return total / (Number(process.hrtime.bigint() - started) / 1e9);
    };
    const forwards: number[] = [];
    const viaClient: number[] = [];
    const framesBefore = a.stats().forwarder.frames;
    for (let round = 0; round < 3; round++) {
      forwards.push(await run((key) => a.allow({ key, action: 'api', limit: 1e9, windowMs: 60_000 })));
      viaClient.push(await run((key) => client.allow({ key, action: 'api', limit: 1e9, windowMs: 60_000 })));
      log(`  round ${round + 1}: forwarded a→b ${fmtRate(forwards[round]!)}, client→a→b ${fmtRate(viaClient[round]!)}`);
    }
    const frames = a.stats().forwarder.frames - framesBefore;
    return { forward: median(forwards), client: median(viaClient), framesPerDecision: frames / (6 * total) };
  } finally {
    client.close();
    await Promise.all([a.stop({ graceful: false }), b.stop({ graceful: false })]);
  }
}

export async function runNodeBench(log: Log): Promise<string> {
  log('node: locally owned keys, node.allow() vs the core…');
  const local = await localAllow(log);
  log('node: forwarding to the owner over gRPC…');
  const fwd = await forwarded(log);
  return [
    '### Node: local decisions and forwarding',
    '',
    table(
      ['path', 'decisions/s', 'note'],
      [
        ['core `LimiterStore.allow()`', fmtRate(local.core), 'same process, same keys'],
        ['`node.allowNow()` on a locally owned key (sync)', fmtRate(local.now), `${((100 * local.now) / local.core).toFixed(0)} % of the core`],
        ['`node.allow()` on a locally owned key (awaited)', fmtRate(local.node), `${((100 * local.node) / local.core).toFixed(0)} % of the core: an await per call`],
        ['`node.allow()` forwarded to the owner (5,000 in flight)', fmtRate(fwd.forward), `${(1 / fwd.framesPerDecision).toFixed(0)} decisions per frame on average; both nodes share this one thread`],
        ['`RingLimitClient` → node → owner (5,000 in flight)', fmtRate(fwd.client), 'AllowBatch + one forward hop'],
      ],
    ),
  ].join('\n');
}
