/**
 * A load generator process for the chaos harness: calls random nodes through the public
 * API at a fixed rate for a bounded time and prints every decision as a JSON line
 * [sentAtMs, keyIndex, outcome (1 allowed, 0 rejected, -1 error), latencyMs].
 */
import { fileURLToPath } from 'node:url';
import { seededRng } from '../common/rng.js';
import { RingLimitClient } from '../node/client/client.js';
import type { Algorithm } from '../limiter/types.js';

/** The action every load generator's requests name. */
export const CHAOS_ACTION = 'chaos';

export interface LoadSpec {
  nodes: string[];
  keyCount: number;
  distribution: 'uniform' | 'zipf' | 'hot';
  ratePerSec: number;
  durationMs: number;
  limit: number;
  windowMs: number;
  algorithm: Algorithm;
  seed: number;
  keyPrefix: string;
  /** Hot-key mode on every request (the client spreads them over the nodes). */
  global: boolean;
  /** false: the client asks its preferred node, not each key's owner (mostly non-owners: the leases scenario). */
  ringAware: boolean;
  /** The bearer token to send, if the nodes ask for one. */
  token?: string;
}

const TICK_MS = 10;
/** Bound on decisions awaiting an answer; beyond it the generator skips (and counts) calls. */
const MAX_IN_FLIGHT = 5_000;

function keyPicker(spec: LoadSpec): () => number {
  const rng = seededRng(spec.seed);
  if (spec.distribution === 'uniform') return () => rng.int(spec.keyCount);
  if (spec.distribution === 'hot') return () => (rng.next() < 0.5 ? 0 : rng.int(spec.keyCount));
  // Zipf(1): precomputed cumulative weights, binary search.
  const cumulative = new Float64Array(spec.keyCount);
  let sum = 0;
  for (let i = 0; i < spec.keyCount; i++) cumulative[i] = sum += 1 / (i + 1);
  return () => {
    const x = rng.next() * sum;
    let lo = 0;
    let hi = spec.keyCount - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export async function runLoad(spec: LoadSpec, emit: (line: string) => void): Promise<void> {
  const client = new RingLimitClient({ nodes: spec.nodes, timeoutMs: 1_000, ringAware: spec.ringAware, ...(spec.token === undefined ? {} : { token: spec.token }) });
  const pick = keyPicker(spec);
  const perTick = spec.ratePerSec / (1000 / TICK_MS);
  const end = Date.now() + spec.durationMs;
  let owed = 0;
  let inFlight = 0;
  let skipped = 0;
  const pending: Promise<void>[] = [];
  let buffer: string[] = [];
  const flush = setInterval(() => {
    if (buffer.length > 0) emit(buffer.join('\n'));
    buffer = [];
  }, 100);
  try {
    while (Date.now() < end) {
      owed += perTick;
      for (; owed >= 1; owed--) {
        if (inFlight >= MAX_IN_FLIGHT) {
          skipped++;
          continue;
        }
        const keyIndex = pick();
        const sentAt = Date.now();
        const started = performance.now();
        inFlight++;
        const call = client
          .allow({ key: `${spec.keyPrefix}${keyIndex}`, action: CHAOS_ACTION, limit: spec.limit, windowMs: spec.windowMs, algorithm: spec.algorithm, global: spec.global })
          .then(
            (d) => (d.allowed ? 1 : 0),
            () => -1,
          )
          .then((outcome) => {
            inFlight--;
            buffer.push(JSON.stringify([sentAt, keyIndex, outcome, Math.round((performance.now() - started) * 100) / 100]));
          });
        pending.push(call);
      }
      if (pending.length > 50_000) await Promise.all(pending.splice(0));
      await new Promise((r) => setTimeout(r, TICK_MS));
    }
    await Promise.all(pending);
  } finally {
    clearInterval(flush);
    if (buffer.length > 0) emit(buffer.join('\n'));
    emit(JSON.stringify({ done: true, skipped }));
    client.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  runLoad(spec, (line) => process.stdout.write(`${line}\n`)).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
