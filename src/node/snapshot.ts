import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RingLimitError } from '../common/errors.js';
import { STATE_STRIDE } from '../limiter/algorithms/index.js';
import type { LimiterStore } from '../limiter/store.js';
import type { AlgorithmId } from '../limiter/types.js';
import { fromWireEntry, toWireEntry } from './state-wire.js';
import { decodeFrame, encodeFrame, frameLimits } from './wire/codec.js';
import { FrameType, type WireEntry } from './wire/frames.js';
import { decodeMsgpack, encodeMsgpack } from './wire/msgpack.js';

const MAGIC = 'ringlimit-snapshot';
const VERSION = 1;

function snapshotPath(dataDir: string, nodeId: string): string {
  return join(dataDir, `${nodeId}.snapshot`);
}

/**
 * Writes every key's state with times relative to `nowMs`, plus the wall-clock time of
 * writing, atomically (temp file, then rename).
 */
export async function writeSnapshot(dataDir: string, nodeId: string, store: LimiterStore, nowMs: number): Promise<number> {
  const entries: WireEntry[] = [];
  store.forEachEntry((action, key, algorithm, cells, base) => entries.push(toWireEntry(action, key, algorithm, cells, base, nowMs)));
  const chunks: Buffer[] = [];
  for (let start = 0; start < entries.length; start += frameLimits.maxItems) {
    chunks.push(encodeFrame({ type: FrameType.Handoff, id: 0, entries: entries.slice(start, start + frameLimits.maxItems) }));
  }
  await mkdir(dataDir, { recursive: true });
  const path = snapshotPath(dataDir, nodeId);
  await writeFile(`${path}.tmp`, encodeMsgpack([MAGIC, VERSION, nodeId, Date.now(), chunks]));
  await rename(`${path}.tmp`, path);
  return entries.length;
}

/**
 * Loads a snapshot if there is one: each state is re-based as if the node had been
 * running through its downtime (so buckets refill and windows pass), and merged
 * conservatively with anything already held. Returns the number of keys loaded.
 */
export async function loadSnapshot(dataDir: string, nodeId: string, store: LimiterStore, nowMs: number): Promise<number> {
  let bytes: Buffer;
  try {
    bytes = await readFile(snapshotPath(dataDir, nodeId));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  const value = decodeMsgpack(bytes);
  if (!Array.isArray(value) || value[0] !== MAGIC || value[1] !== VERSION || !Array.isArray(value[4]) || typeof value[3] !== 'number') {
    throw new RingLimitError('FAILED_PRECONDITION', `snapshot ${snapshotPath(dataDir, nodeId)} is not a ringlimit v${VERSION} snapshot`);
  }
  const downtimeMs = Math.max(0, Date.now() - value[3]);
  const cells = new Float64Array(STATE_STRIDE);
  let loaded = 0;
  for (const chunk of value[4] as unknown[]) {
    const frame = chunk instanceof Uint8Array ? decodeFrame(chunk) : undefined;
    if (frame === undefined || frame.type !== FrameType.Handoff) {
      throw new RingLimitError('FAILED_PRECONDITION', `snapshot ${snapshotPath(dataDir, nodeId)} is corrupt`);
    }
    for (const entry of frame.entries) {
      store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, fromWireEntry(entry, nowMs - downtimeMs, cells), 0, 'merge');
      loaded++;
    }
  }
  return loaded;
}
