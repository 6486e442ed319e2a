import { createHash } from 'node:crypto';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RingLimitError } from '../../common/errors.js';
import { STATE_STRIDE } from '../../limiter/algorithms/index.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { AlgorithmId } from '../../limiter/types.js';
import { fromWireEntry, toWireEntry } from '../wire/state-wire.js';
import { decodeFrame, encodeFrame, frameLimits } from '../wire/codec.js';
import { FrameType, type WireEntry } from '../wire/frames.js';
import { decodeMsgpack, encodeMsgpack } from '../wire/msgpack.js';

/**
 * The snapshot file, format 2:
 *   MAGIC (8 bytes: "RLSNAP", 0, 2)
 *   records: u32 length (big-endian), then that many bytes of MessagePack —
 *     the first [nodeId, members] (the cluster's owners when it was written; files
 *     written before members were recorded have [nodeId]), then chunks
 *     [wallMs, Handoff frame bytes] whose times are relative to the chunk's wall-clock time
 *   END (u32 0xffffffff), then the SHA-256 of every byte before END.
 * A file that is short, has a wrong checksum or a malformed record is never loaded.
 */
const MAGIC = Buffer.from([0x52, 0x4c, 0x53, 0x4e, 0x41, 0x50, 0x00, 0x02]);
const END = 0xffffffff;
const HASH_BYTES = 32;

export const snapshotLimits = {
  /** A larger file is refused rather than read into memory. */
  maxFileBytes: 2 ** 30,
  /** Keys per chunk record: one Handoff frame. */
  entriesPerChunk: frameLimits.maxItems,
  /** Node ids in the header's members list (a cluster has at most 4,096 members). */
  maxMembers: 4096,
  /** Characters in one of those node ids. */
  maxMemberIdChars: 256,
} as const;

/** Why `members` cannot be a snapshot's members list, or undefined if it can. */
function membersProblem(members: unknown): string | undefined {
  if (!Array.isArray(members)) return 'is not a list';
  if (members.length > snapshotLimits.maxMembers) return `has ${members.length} node ids, more than ${snapshotLimits.maxMembers}`;
  for (const id of members as unknown[]) {
    if (typeof id !== 'string' || id.length === 0 || id.length > snapshotLimits.maxMemberIdChars) {
      return `holds ${typeof id === 'string' ? `a node id of ${id.length} characters` : `a ${typeof id}`}, not one of 1 to ${snapshotLimits.maxMemberIdChars}`;
    }
  }
  return undefined;
}

/** What to do with a snapshot that fails its checks: refuse to start, or set it aside and start empty. */
export type CorruptSnapshotPolicy = 'refuse' | 'set-aside';

export function snapshotPath(dataDir: string, nodeId: string): string {
  return join(dataDir, `${nodeId}.snapshot`);
}

function errnoOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

/** Creates the data directory if needed and proves it writable, so that a bad one fails at start, not at stop. */
export async function checkDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (error) {
    throw new RingLimitError('FAILED_PRECONDITION', `dataDir: cannot create ${dataDir} (${errnoOf(error)})`, 'dataDir');
  }
  const probe = join(dataDir, `.ringlimit-write-check-${process.pid}`);
  try {
    const handle = await open(probe, 'w');
    try {
      await handle.writeFile('ok');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await unlink(probe);
  } catch (error) {
    throw new RingLimitError('FAILED_PRECONDITION', `dataDir: ${dataDir} is not writable (${errnoOf(error)})`, 'dataDir');
  }
}

function record(payload: Buffer): Buffer[] {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(payload.length);
  return [length, payload];
}

/** A snapshot being written: records go to `<path>.tmp`; commit() makes it the snapshot atomically. */
class SnapshotWriter {
  private readonly hash = createHash('sha256');

  private constructor(
    private readonly handle: FileHandle,
    private readonly tmpPath: string,
    private readonly path: string,
  ) {}

  static async open(path: string, nodeId: string, members: readonly string[]): Promise<SnapshotWriter> {
    const tmpPath = `${path}.tmp`;
    const writer = new SnapshotWriter(await open(tmpPath, 'w'), tmpPath, path);
    try {
      await writer.write([MAGIC, ...record(encodeMsgpack([nodeId, members]))]);
    } catch (error) {
      await writer.abandon();
      throw error;
    }
    return writer;
  }

  async chunk(wallMs: number, entries: WireEntry[]): Promise<void> {
    await this.write(record(encodeMsgpack([wallMs, encodeFrame({ type: FrameType.Handoff, id: 0, entries })])));
  }

  /** Seals the file with its checksum, flushes it to disk, and renames it over the previous snapshot. */
  async commit(): Promise<void> {
    const end = Buffer.allocUnsafe(4);
    end.writeUInt32BE(END);
    this.hash.update(end);
    await this.handle.write(end);
    await this.handle.write(this.hash.digest());
    await this.handle.sync();
    await this.handle.close();
    await rename(this.tmpPath, this.path);
    await syncDirectory(dirname(this.path));
  }

  async abandon(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }

  private async write(buffers: Buffer[]): Promise<void> {
    for (const b of buffers) this.hash.update(b);
    await this.handle.writev(buffers);
  }
}

/** A rename is durable once its directory is flushed (where the platform allows opening one). */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // not supported here (e.g. Windows): the rename is still atomic, only its durability is the OS's
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Writes every key's state atomically (temp file, fsync, rename, fsync of the directory),
 * in chunks of `slotsPerTurn` slots so that a large store does not stall the event loop;
 * each chunk's times are relative to the moment it was read. `members`: the node ids of the
 * cluster's owners now (at most maxMembers ids of 1 to maxMemberIdChars characters, or the
 * write fails with INVALID_ARGUMENT before touching the disk). Returns the keys written.
 */
export async function writeSnapshot(
  dataDir: string,
  nodeId: string,
  store: LimiterStore,
  clock: { now(): number },
  slotsPerTurn: number,
  members: readonly string[] = [],
): Promise<number> {
  const problem = membersProblem(members);
  if (problem !== undefined) throw new RingLimitError('INVALID_ARGUMENT', `members: the snapshot's members list ${problem}`, 'members');
  const writer = await SnapshotWriter.open(snapshotPath(dataDir, nodeId), nodeId, members);
  let written = 0;
  try {
    let entries: WireEntry[] = [];
    let nowMs = 0;
    const collect = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void => {
      entries.push(toWireEntry(action, key, algorithm, cells, base, nowMs));
    };
    for (let from = 0; from < store.slotCount; from += slotsPerTurn) {
      nowMs = clock.now();
      const wallMs = Date.now();
      store.forEachEntry(collect, from, from + slotsPerTurn, true); // states waiting to be merged too: a restart merges them
      for (let start = 0; start < entries.length; start += snapshotLimits.entriesPerChunk) {
        await writer.chunk(wallMs, entries.slice(start, start + snapshotLimits.entriesPerChunk));
      }
      written += entries.length;
      entries = [];
    }
    await writer.commit();
  } catch (error) {
    await writer.abandon();
    throw error;
  }
  return written;
}

interface ParsedSnapshot {
  nodeId: string;
  members: string[];
  chunks: { wallMs: number; entries: WireEntry[] }[];
}

/** The snapshot's content, or the reason it cannot be trusted. */
function parseSnapshot(bytes: Buffer): ParsedSnapshot | string {
  if (bytes.length < MAGIC.length + 4 + HASH_BYTES || !bytes.subarray(0, MAGIC.length - 1).equals(MAGIC.subarray(0, MAGIC.length - 1))) {
    return 'it is not a ringlimit snapshot (or an older one, written without a checksum)';
  }
  if (bytes[MAGIC.length - 1] !== MAGIC[MAGIC.length - 1]) return `its format ${bytes[MAGIC.length - 1]} is not format ${MAGIC[MAGIC.length - 1]}`;
  const sealed = bytes.length - HASH_BYTES;
  const expected = createHash('sha256').update(bytes.subarray(0, sealed)).digest();
  if (!expected.equals(bytes.subarray(sealed))) return 'its checksum does not match (a torn or damaged file)';
  let offset = MAGIC.length;
  let nodeId: string | undefined;
  let members: string[] = [];
  const chunks: ParsedSnapshot['chunks'] = [];
  for (;;) {
    if (offset + 4 > sealed) return 'it ends without its end mark';
    const length = bytes.readUInt32BE(offset);
    offset += 4;
    if (length === END) break;
    if (offset + length > sealed - 4) return 'a record runs past the end';
    const value = decodeMsgpack(bytes.subarray(offset, offset + length));
    offset += length;
    if (nodeId === undefined) {
      // [nodeId, members], or [nodeId] as written before members were recorded.
      if (!Array.isArray(value) || value.length < 1 || value.length > 2 || typeof value[0] !== 'string') return 'its header is malformed';
      if (value.length === 2) {
        const problem = membersProblem(value[1]);
        if (problem !== undefined) return `its header's members list ${problem}`;
        members = value[1] as string[];
      }
      nodeId = value[0];
      continue;
    }
    if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'number' || !Number.isFinite(value[0]) || !(value[1] instanceof Uint8Array)) {
      return 'a chunk is malformed';
    }
    const frame = decodeFrame(value[1]);
    if (frame === undefined || frame.type !== FrameType.Handoff) return 'a chunk holds a malformed state';
    chunks.push({ wallMs: value[0], entries: frame.entries });
  }
  if (offset !== sealed) return 'bytes follow its end mark';
  if (nodeId === undefined) return 'it has no header';
  return { nodeId, members, chunks };
}

export interface LoadResult {
  loaded: number;
  /**
   * The members recorded in the snapshot loaded: the cluster's owners when it was written
   * ([] when none: no snapshot, one set aside, or one written before members were recorded).
   * loadSnapshot always sets it (see LoadedSnapshot); optional here only so that a
   * "nothing loaded" value written as { loaded: 0 } still type-checks.
   */
  members?: string[];
  /** Where a snapshot that failed its checks was moved (policy 'set-aside'). */
  setAsideTo?: string;
  reason?: string;
}

/** What loadSnapshot returns: a LoadResult whose members are always set. */
export type LoadedSnapshot = LoadResult & { members: string[] };

/**
 * Loads this node's snapshot if there is one: each state is re-based as if the node had
 * been running through its downtime (buckets refill, windows pass) and merged
 * conservatively with anything already held. A snapshot that fails its checks is refused
 * (FAILED_PRECONDITION, naming the file and what is wrong) or, with 'set-aside', renamed
 * beside it and the node starts empty; it is never loaded in part. Loads nothing unless
 * the whole file checks out.
 */
export async function loadSnapshot(dataDir: string, nodeId: string, store: LimiterStore, clock: { now(): number }, onCorrupt: CorruptSnapshotPolicy): Promise<LoadedSnapshot> {
  const path = snapshotPath(dataDir, nodeId);
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { loaded: 0, members: [] };
    throw new RingLimitError('FAILED_PRECONDITION', `snapshot ${path} cannot be read (${errnoOf(error)})`, 'dataDir');
  }
  let bytes: Buffer;
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw new RingLimitError('FAILED_PRECONDITION', `snapshot ${path} is a directory: move it away, the node keeps its snapshot file there`, 'dataDir');
    if (info.size > snapshotLimits.maxFileBytes) throw new RingLimitError('FAILED_PRECONDITION', `snapshot ${path} is ${info.size} bytes, more than the ${snapshotLimits.maxFileBytes} this node reads`, 'dataDir');
    bytes = await handle.readFile();
  } finally {
    await handle.close();
  }
  const parsed = parseSnapshot(bytes);
  const reason = typeof parsed === 'string' ? parsed : parsed.nodeId === nodeId ? undefined : `it belongs to node ${JSON.stringify(parsed.nodeId)}`;
  if (typeof parsed === 'string' || reason !== undefined) {
    const why = reason ?? String(parsed);
    if (onCorrupt === 'refuse') {
      throw new RingLimitError('FAILED_PRECONDITION', `snapshot ${path} was not loaded: ${why}. Move it away to start without it, or start with --set-aside-corrupt-snapshot`, 'dataDir');
    }
    const setAsideTo = `${path}.corrupt-${Date.now()}`;
    await rename(path, setAsideTo);
    return { loaded: 0, members: [], setAsideTo, reason: why };
  }
  const cells = new Float64Array(STATE_STRIDE);
  // Both clocks read together, after the file was read and checked: the load's own time is not downtime.
  const wallNowMs = Date.now();
  const nowMs = clock.now();
  let loaded = 0;
  for (const chunk of parsed.chunks) {
    const downtimeMs = Math.max(0, wallNowMs - chunk.wallMs);
    for (const entry of chunk.entries) {
      store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, fromWireEntry(entry, nowMs - downtimeMs, cells), 0, 'merge');
      loaded++;
    }
  }
  return { loaded, members: parsed.members };
}
