/**
 * The node's paths: a locally owned key through createNode().allow() against the bare
 * core in the same process, and decisions forwarded to another node (batched over one
 * gRPC stream) and through the public API client.
 */
import { ManualClock } from '../src/common/clock.js';
import { LimiterStore } from '../src/limiter/store.js';
import { RingLimitClient } from '../src/node/client/client.js';
import { createNode } from '../src/node/node.js';
import { measureForwarded, measureLocal, type NodeModule } from './node-paths.js';
import { fmtRate, median, table, type Log } from './util.js';

const KEYS = 100_000;
const ROUNDS = 5;

export const currentNodeModule: NodeModule = {
  createNode: (options) => createNode(options),
  newClient: (nodes) => new RingLimitClient({ nodes, preferFirst: true, ringAware: false }),
};

function measureCore(): number {
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
  const store = new LimiterStore(new ManualClock(), { initialKeys: KEYS });
  const rates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < KEYS; i++) store.allow({ key: keys[i]!, action: 'api', limit: 1e9, windowMs: 60_000 });
    rates.push(KEYS / (Number(process.hrtime.bigint() - started) / 1e9));
  }
  return median(rates);
}

export async function runNodeBench(log: Log): Promise<string> {
  log('node: locally owned keys, node.allow() vs the core…');
  const core = measureCore();
  const local = await measureLocal(currentNodeModule, ROUNDS, log);
  log('node: forwarding to the owner over gRPC…');
  const fwd = await measureForwarded(currentNodeModule, 3, log);
  return [
    '### Node: local decisions and forwarding',
    '',
    table(
      ['path', 'decisions/s', 'note'],
      [
        ['core `LimiterStore.allow()`', fmtRate(core), 'same process, same keys'],
        ['`node.allowNow()` on a locally owned key (sync)', fmtRate(local.localNow), `${((100 * local.localNow) / core).toFixed(0)} % of the core`],
        ['`node.allow()` on a locally owned key (awaited)', fmtRate(local.localAllow), `${((100 * local.localAllow) / core).toFixed(0)} % of the core: an await per call`],
        ['`node.allow()` forwarded to the owner (5,000 in flight)', fmtRate(fwd.forwarded), `${fwd.forwardsPerFrame.toFixed(0)} decisions per frame on average; both nodes share this one thread`],
        ['`RingLimitClient` → node → owner (5,000 in flight)', fmtRate(fwd.client), 'AllowStream, not ring-aware: one forward hop'],
      ],
    ),
  ].join('\n');
}
