import { statSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { warmUp, WarmUpPort } from '../../src/node/warm-up.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import { WarmUpCluster } from '../../src/node/cluster/warm-up-cluster.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { META_STATE } from '../../src/node/routing/cluster-view.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

describe('a joining member is warm before it owns keys', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('warmUp runs the decision and peer-codec paths for its budget, yielding to the event loop; 0 skips it', async () => {
    expect(await warmUp(0)).toEqual({ rounds: 0, ms: 0, yields: 0, served: 0, address: undefined });
    let turns = 0;
    const ticker = setInterval(() => turns++, 1);
    const BUDGET_MS = 600;
    const result = await warmUp(BUDGET_MS);
    clearInterval(ticker);
    expect(result.rounds).toBeGreaterThan(0);
    expect(result.ms).toBeGreaterThanOrEqual(BUDGET_MS);
    // Calls in flight at the deadline do not hold it past its budget (plus the servers' close), and its port is closed.
    expect(result.ms).toBeLessThan(BUDGET_MS + 1_500);
    expect(result.address).toMatch(/^unix:\//);
    expect(await connectOutcome(result.address!)).toBe('ENOENT');
    // It yields after every slice of a few ms (4 ms of work, 2 ms of rest): at least every
    // 100 ms of its budget even when the machine is shared and its first rounds run cold
    // (one took over 50 ms in CI beside the other test files); timers ran meanwhile.
    expect(result.yields).toBeGreaterThanOrEqual(BUDGET_MS / 100);
    expect(turns).toBeGreaterThan(0);
  });

  it('the others see it joining (owning nothing) until its warm-up has run, then active and on every ring', { timeout: 30_000 }, async () => {
    nodes = await startCluster(2);
    const [a] = nodes as [RingLimitNode];
    const WARM_UP_MS = 1_500;
    const starting = createNode({ nodeId: 'late', gossipPreset: 'test', port: 0, gossipPort: 0, clusterName: a.options.clusterName, join: [a.gossipAddress!], warmUpMs: WARM_UP_MS });
    const startedAt = Date.now();
    let seenJoiningAt = 0;
    let activeAt = 0;
    await waitFor(
      () => {
        const late = a.members().find((m) => m.nodeId === 'late');
        if (late !== undefined && seenJoiningAt === 0 && late.meta[META_STATE] === 'joining') seenJoiningAt = Date.now();
        if (late !== undefined && late.meta[META_STATE] === 'active') activeAt = Date.now();
        if (activeAt === 0) expect(a.owners()).not.toContain('late');
        return activeAt !== 0;
      },
      20_000,
      'the late member to turn active',
    );
    nodes.push(await starting);
    expect(seenJoiningAt).toBeGreaterThan(0);
    // Its warm-up began when it started; it turned active only after the whole budget.
    expect(activeAt - startedAt).toBeGreaterThanOrEqual(WARM_UP_MS);
    await waitFor(() => nodes.every((n) => n.owners().includes('late')), 10_000, 'every ring to include it');
  });
});

/** 'connected', or the error code connecting to unix:<path> gave. */
function connectOutcome(address: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const socket = connect({ path: address.slice('unix:'.length) }, () => (socket.destroy(), resolve('connected')));
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

describe('the warm-up port: the node’s gRPC server stack and client, for the warm-up only', () => {
  it('answers the node’s client (with the warm-up’s token) from the scratch member, refuses a caller without it, and is closed after', async () => {
    const cluster = new WarmUpCluster();
    const port = await WarmUpPort.open(cluster);
    try {
      // A Unix socket in a directory only this user can enter: no TCP port taken.
      expect(port.address).toMatch(/^unix:\//);
      expect(statSync(dirname(port.address.slice('unix:'.length))).mode & 0o777).toBe(0o700);
      const { request } = cluster.requests[0]!;
      const answer = await port.client.allow(request);
      expect(answer.allowed).toBe(true);
      expect(cluster.counts.answered).toBe(1);
      const stranger = new RingLimitClient({ nodes: [port.address], ringAware: false });
      await expect(stranger.allow(request)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      stranger.close();
      expect(cluster.counts.answered).toBe(1);
    } finally {
      await port.close();
      cluster.close();
    }
    // The socket and its private directory are gone.
    expect(await connectOutcome(port.address)).toBe('ENOENT');
  });
});

describe('the warm-up port where no private directory can be made (a read-only /tmp, as in a locked-down pod)', () => {
  it('listens on a port of 127.0.0.1 instead, still answering only its own token, and closes it after', async () => {
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = '/nonexistent/ringlimit-test';
    const cluster = new WarmUpCluster();
    let port: WarmUpPort | undefined;
    try {
      port = await WarmUpPort.open(cluster);
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
    try {
      expect(port.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect((await port.client.allow(cluster.requests[0]!.request)).allowed).toBe(true);
      const stranger = new RingLimitClient({ nodes: [port.address], ringAware: false });
      await expect(stranger.allow(cluster.requests[0]!.request)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      stranger.close();
    } finally {
      await port.close();
      cluster.close();
    }
    const [host, tcpPort] = port.address.split(':') as [string, string];
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host, port: Number(tcpPort) }, () => (socket.destroy(), resolve('connected')));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    });
    expect(outcome).toBe('ECONNREFUSED');
  });
});

describe('the warm-up runs a member’s own paths on a scratch cluster', () => {
  it('each round decides a batch of callers’ requests, replicates its decisions to a replica and to an owner that merges them, and serves a peer’s forwards', () => {
    const cluster = new WarmUpCluster();
    try {
      for (let i = 0; i < 40; i++) cluster.round();
      // 64 requests a round, every one answered here (the keys are the scratch member's own).
      expect(cluster.counts.answered).toBe(40 * 64);
      // Every forward answered with a decision (status 0), none with an error.
      expect(cluster.counts.forwarded).toBe(40 * 64);
      // Every decision changed a state: the replica imported them, the merging owner too.
      expect(cluster.counts.replicated).toBeGreaterThan(40 * 64 * 0.9);
      expect(cluster.counts.merged).toBe(cluster.counts.replicated);
    } finally {
      cluster.close();
    }
  });
});
