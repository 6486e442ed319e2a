import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve.js';
import { RingLimitError } from '../../src/common/errors.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { snapshotPath } from '../../src/node/state/snapshot.js';
import { snapshotsCurrent, startCluster, stopAll, waitFor } from './helpers.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ringlimit-snapshot-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const request = (key: string) => ({ key, action: 'upload', limit: 10, windowMs: 3_600_000 });

async function allowedOf(node: RingLimitNode, key: string, calls: number): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < calls; i++) if ((await node.allow(request(key))).allowed) allowed++;
  return allowed;
}

/** A node with a snapshot of `key` used up (10 of 10), stopped gracefully. */
async function usedUpSnapshot(dataDir: string): Promise<void> {
  const node = await createNode({ nodeId: 'solo', dataDir });
  expect(await allowedOf(node, 'alice', 10)).toBe(10);
  await node.stop();
}

function canBindTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function canBindUdp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

const portOf = (address: string | undefined): number => Number(address!.split(':').pop());

describe('snapshots', () => {
  it('a kill of every node loses at most one snapshot interval: periodic snapshots keep a used-up key used up', async () => {
    const dataDir = freshDir();
    let nodes = await startCluster(3, { dataDir, snapshotIntervalMs: 200 });
    try {
      const [n0] = nodes as [RingLimitNode];
      expect(await allowedOf(n0, 'bob', 10)).toBe(10);
      await waitFor(snapshotsCurrent(nodes), 10_000, 'every node to find its snapshot current');
      await stopAll(nodes, false); // a crash: no final snapshot, no handoff
      nodes = await startCluster(3, { dataDir, snapshotIntervalMs: 200 });
      expect(await allowedOf(nodes[0]!, 'bob', 5)).toBe(0);
    } finally {
      await stopAll(nodes);
    }
  });

  it('a snapshot with a flipped byte is refused with a message naming the file and the checksum', async () => {
    const dataDir = freshDir();
    await usedUpSnapshot(dataDir);
    const path = snapshotPath(dataDir, 'solo');
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(path, bytes);
    const failure = await createNode({ nodeId: 'solo', dataDir }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RingLimitError);
    expect((failure as RingLimitError).code).toBe('FAILED_PRECONDITION');
    expect((failure as Error).message).toContain(path);
    expect((failure as Error).message).toMatch(/checksum/);
  });

  it('a truncated snapshot and one of the old format without a checksum are refused, never loaded in part', async () => {
    const dataDir = freshDir();
    await usedUpSnapshot(dataDir);
    const path = snapshotPath(dataDir, 'solo');
    writeFileSync(path, readFileSync(path).subarray(0, 40));
    await expect(createNode({ nodeId: 'solo', dataDir })).rejects.toThrow(/was not loaded/);
    // Format 1: a MessagePack array ['ringlimit-snapshot', 1, …] with no checksum.
    writeFileSync(path, Buffer.from([0x95, 0xb2, ...Buffer.from('ringlimit-snapshot'), 0x01, 0xa4, ...Buffer.from('solo'), 0x00, 0x90]));
    await expect(createNode({ nodeId: 'solo', dataDir })).rejects.toThrow(/not a ringlimit snapshot \(or an older one/);
  });

  it("with onCorruptSnapshot 'set-aside' a bad snapshot is moved aside and the node starts empty", async () => {
    const dataDir = freshDir();
    await usedUpSnapshot(dataDir);
    const path = snapshotPath(dataDir, 'solo');
    const bytes = readFileSync(path);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(path, bytes);
    const node = await createNode({ nodeId: 'solo', dataDir, onCorruptSnapshot: 'set-aside' });
    try {
      const { setAsideTo, loadedKeys } = node.stats().snapshot;
      expect(loadedKeys).toBe(0);
      expect(setAsideTo).toMatch(/solo\.snapshot\.corrupt-\d+$/);
      expect(readFileSync(setAsideTo)).toEqual(bytes);
      expect(await allowedOf(node, 'alice', 3)).toBe(3);
    } finally {
      await node.stop();
    }
  });

  it('a snapshot path that is a directory, and a data dir that cannot be written, fail at start with a clear message', async () => {
    const dataDir = freshDir();
    mkdirSync(snapshotPath(dataDir, 'solo'));
    await expect(createNode({ nodeId: 'solo', dataDir })).rejects.toThrow(/is a directory/);
    const file = join(freshDir(), 'a-file');
    writeFileSync(file, '');
    await expect(createNode({ nodeId: 'solo', dataDir: join(file, 'sub') })).rejects.toThrow(/dataDir: cannot create .*ENOTDIR/);
    // A directory that exists but takes no files (as root, permissions would not stop the write).
    if (existsSync('/proc/self/fdinfo')) {
      await expect(createNode({ nodeId: 'solo', dataDir: '/proc/self/fdinfo', port: 0, gossipPort: 0 })).rejects.toThrow(/is not writable/);
    }
  });

  it('a stop whose final snapshot cannot be written still closes every port, then reports the failure', async () => {
    const dataDir = join(freshDir(), 'data');
    const node = await createNode({ nodeId: 'n-stop', dataDir, port: 0, gossipPort: 0, gossipPreset: 'test' });
    const grpcPort = portOf(node.grpcAddress);
    const gossipPort = portOf(node.gossipAddress);
    await node.allow(request('carol'));
    rmSync(dataDir, { recursive: true, force: true });
    writeFileSync(dataDir, 'not a directory any more');
    const started = Date.now();
    await expect(node.stop()).rejects.toThrow(/ENOTDIR/);
    expect(Date.now() - started).toBeLessThan(node.options.drainTimeoutMs + 2_000);
    expect(await canBindTcp(grpcPort)).toBe(true);
    expect(await canBindUdp(gossipPort)).toBe(true);
  });

  it('a gossip port in use fails the start with a message naming it, and leaves the gRPC port free', async () => {
    const first = await createNode({ nodeId: 'holder', port: 0, gossipPort: 0, gossipPreset: 'test' });
    try {
      const taken = portOf(first.gossipAddress);
      const probe = createServer();
      const grpcPort = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port)));
      await new Promise((r) => probe.close(r));
      await expect(createNode({ nodeId: 'late', port: grpcPort, gossipPort: taken, gossipPreset: 'test' })).rejects.toThrow(new RegExp(`${taken}`));
      expect(await canBindTcp(grpcPort)).toBe(true);
    } finally {
      await first.stop({ graceful: false });
    }
  });

  it('serve takes --snapshot-interval, --set-aside-corrupt-snapshot and --max-keys, and refuses bad values', () => {
    const { options } = parseServeArgs(['--data-dir', '/tmp/x', '--snapshot-interval', '2s', '--set-aside-corrupt-snapshot', '--max-keys', '5000']);
    expect(options).toMatchObject({ dataDir: '/tmp/x', snapshotIntervalMs: 2_000, onCorruptSnapshot: 'set-aside', store: { maxKeys: 5_000 } });
    expect(parseServeArgs(['--snapshot-interval', '250ms']).options.snapshotIntervalMs).toBe(250);
    expect(parseServeArgs(['--snapshot-interval', '0']).options.snapshotIntervalMs).toBe(0);
    expect(() => parseServeArgs(['--snapshot-interval', 'soon'])).toThrow(/--snapshot-interval/);
    expect(() => parseServeArgs(['--max-keys', 'many'])).toThrow(/--max-keys/);
  });

  it('maxKeys from serve bounds the store', async () => {
    const { options } = parseServeArgs(['--max-keys', '3']);
    const node = await createNode({ ...options, cluster: false });
    try {
      for (let i = 0; i < 10; i++) await node.allow(request(`k${i}`));
      expect(node.stats().store.keys).toBe(3);
    } finally {
      await node.stop();
    }
  });

  it('leaves no temporary file behind and overwrites the previous snapshot atomically', async () => {
    const dataDir = freshDir();
    const node = await createNode({ nodeId: 'solo', dataDir, snapshotIntervalMs: 50 });
    try {
      for (let i = 0; i < 3; i++) {
        // Each decision is a change: the next check writes the file again (an unchanged store is not rewritten).
        const written = node.stats().snapshot.written;
        await node.allow(request('dave'));
        await waitFor(() => node.stats().snapshot.written > written, 5_000, 'a snapshot after the decision');
      }
      const written = node.stats().snapshot.written;
      const skipped = node.stats().snapshot.skipped;
      await waitFor(() => node.stats().snapshot.skipped >= skipped + 2, 5_000, 'two checks with nothing new');
      expect(node.stats().snapshot.written).toBe(written);
    } finally {
      await node.stop();
    }
    expect(readdirSync(dataDir)).toEqual(['solo.snapshot']);
    const again = await createNode({ nodeId: 'solo', dataDir });
    try {
      expect(again.stats().snapshot.loadedKeys).toBe(1);
      expect(await allowedOf(again, 'dave', 10)).toBe(7);
    } finally {
      await again.stop();
    }
  });
});

describe('a node back from its snapshot', () => {
  it('re-sends its keys to their replicas even before they see it active', async () => {
    const dataDir = freshDir();
    const base = { port: 0, gossipPort: 0, gossipPreset: 'test' as const, replicas: 1 };
    let c = await createNode({ ...base, nodeId: 'C', dataDir });
    for (let i = 0; i < 100; i++) for (let j = 0; j < 6; j++) await c.allow({ ...request(`k${i}`), limit: 5 });
    await c.stop();
    const a = await createNode({ ...base, nodeId: 'A' });
    const b = await createNode({ ...base, nodeId: 'B', join: [a.gossipAddress!] });
    try {
      c = await createNode({ ...base, nodeId: 'C', dataDir, join: [a.gossipAddress!] });
      await waitFor(() => [a, b, c].every((n) => n.owners().length === 3), 10_000, 'three owners');
      const ownedByC = Array.from({ length: 100 }, (_, i) => `k${i}`).filter((k) => c.ownerOf(k, 'upload') === 'C');
      expect(ownedByC.length).toBeGreaterThan(10);
      const copied = () => ownedByC.filter((k) => a.store.getState('upload', k) !== undefined || b.store.getState('upload', k) !== undefined).length;
      await waitFor(() => copied() === ownedByC.length, 5_000, 'a replica copy of every key C owns');
    } finally {
      await Promise.all([a, b, c].map((n) => n.stop({ graceful: false })));
    }
  });
});
