/**
 * Figures for docs/capacity.md that the other sections do not give: bytes on the wire per
 * forwarded decision (peer frames as encoded, MessagePack; gRPC/HTTP/2 framing adds about 14
 * bytes per frame, shared by the batch), and gossip bytes per node per second (5 real nodes,
 * LAN preset, steady state).
 */
import { encodeFrame } from '../src/node/wire/codec.js';
import { FrameType, type ForwardItem, type ForwardResult, type WireEntry } from '../src/node/wire/frames.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';
import type { Log } from './util.js';

const BATCH = 64;

function wireBytesPerDecision(): { forward: number; reply: number; replicate: number } {
  const items: ForwardItem[] = Array.from({ length: BATCH }, (_, i) => ({ id: 1_000_000 + i, action: 'api', key: `user:${100_000 + i}`, limit: 100, windowMs: 60_000, weight: 1, cost: 1, algorithm: 0, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 0, remaining: -1, calendar: '', timeZone: '' }));
  const results: ForwardResult[] = items.map((it) => ({ id: it.id, status: 0, allowed: true, limit: 100, remaining: 57, resetInMs: 23_456.5, retryAfterMs: 0, waitMs: 0, message: '', field: '' }));
  const entries: WireEntry[] = items.map((it) => ({ action: it.action, key: it.key, algorithm: 0, cells: [-12_345.25, 57.5, 0, 0] }));
  return {
    forward: encodeFrame({ type: FrameType.Forward, id: 7, items }).length / BATCH,
    reply: encodeFrame({ type: FrameType.ForwardReply, id: 7, results }).length / BATCH,
    replicate: encodeFrame({ type: FrameType.Replicate, id: 7, entries }).length / BATCH,
  };
}

async function gossipBytesPerSecond(log: Log): Promise<number> {
  const nodes: RingLimitNode[] = [];
  try {
    for (let i = 0; i < 5; i++) nodes.push(await createNode({ nodeId: `g${i}`, port: 0, gossipPort: 0, join: i === 0 ? [] : [nodes[0]!.gossipAddress!] }));
    await new Promise((r) => setTimeout(r, 3_000));
    const sent = (): number => nodes.reduce((sum, n) => sum + n.gossipBytesSent(), 0);
    const before = sent();
    const started = performance.now();
    await new Promise((r) => setTimeout(r, 10_000));
    const perNode = (sent() - before) / 5 / ((performance.now() - started) / 1000);
    log(`capacity: gossip ${perNode.toFixed(0)} bytes/s per node (5 nodes, LAN preset, 10 s)`);
    return perNode;
  } finally {
    await Promise.all(nodes.map((n) => n.stop({ graceful: false }).catch(() => undefined)));
  }
}

export async function runCapacityBench(log: Log): Promise<string> {
  const wire = wireBytesPerDecision();
  log(`capacity: per forwarded decision ${wire.forward.toFixed(1)} B out, ${wire.reply.toFixed(1)} B back, ${wire.replicate.toFixed(1)} B per replicated state`);
  const gossip = await gossipBytesPerSecond(log);
  return [
    '### Capacity figures (for docs/capacity.md)',
    '',
    `Peer frames as encoded (MessagePack), in batches of ${BATCH}, keys like \`user:123456\` and action \`api\`: a forwarded decision takes ${wire.forward.toFixed(1)} bytes to its owner and ${wire.reply.toFixed(1)} bytes back; a replicated key state ${wire.replicate.toFixed(1)} bytes. Gossip in steady state (5 nodes, LAN preset, 10 s): ${gossip.toFixed(0)} bytes/s sent per node.`,
  ].join('\n');
}
