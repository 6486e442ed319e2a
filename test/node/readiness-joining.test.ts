import { createSocket } from 'node:dgram';
import { freePort } from '../deployment/processes.js';
import { describe, expect, it } from 'vitest';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { httpGet } from '../deployment/http-get.js';

/** A UDP port nobody answers on while it is held; release() frees it for the seed. */
function silentUdpPort(): Promise<{ port: number; release: () => Promise<void> }> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    let closed: Promise<void> | undefined;
    const release = (): Promise<void> => (closed ??= new Promise<void>((done) => socket.close(() => done())));
    socket.bind(0, '127.0.0.1', () => resolve({ port: socket.address().port, release }));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Probe {
  status: number;
  reason: string;
  /** Whether createNode had resolved when the answer came. */
  started: boolean;
}

describe('readiness of a member still joining', () => {
  it('GET /readyz answers 503 "joining" until the member has joined and owns keys, then 200 (Kubernetes sends no traffic to a joining node)', async () => {
    const name = `readyz-${process.pid}`;
    const seedGossip = await silentUdpPort();
    const httpPort = await freePort();
    let started = false;
    let joiner: RingLimitNode | undefined;
    let seed: RingLimitNode | undefined;
    // The seed does not answer yet: the joiner stays in its join, its HTTP port open.
    const starting = createNode({ nodeId: 'joiner', port: 0, gossipPort: 0, httpPort, gossipPreset: 'test', join: [`127.0.0.1:${seedGossip.port}`], clusterName: name });
    starting.then(
      (node) => {
        started = true;
        joiner = node;
      },
      () => undefined,
    );
    const probes: Probe[] = [];
    const probe = async (): Promise<void> => {
      try {
        const answer = await httpGet(`http://127.0.0.1:${httpPort}/readyz`);
        probes.push({ status: answer.status, reason: (JSON.parse(answer.body) as { reason: string }).reason, started });
      } catch {
        // not listening yet
      }
    };
    try {
      // While the seed is silent (1 s; the join waits up to 5 s): every answer is 503.
      for (let deadline = Date.now() + 1_000; Date.now() < deadline; ) {
        await probe();
        await sleep(20);
      }
      expect(started).toBe(false);
      expect(probes.length).toBeGreaterThan(5);
      for (const p of probes) expect(p).toEqual({ status: 503, reason: 'joining', started: false });
      // The seed appears where it was said to be: the join completes, and readiness follows.
      await seedGossip.release();
      seed = await createNode({ nodeId: 'seed', port: 0, gossipPort: seedGossip.port, gossipPreset: 'test', clusterName: name });
      for (let deadline = Date.now() + 10_000; Date.now() < deadline && probes.at(-1)?.status !== 200; ) {
        await probe();
        await sleep(20);
      }
      await starting;
      expect(probes.at(-1)).toEqual({ status: 200, reason: 'active, owning keys', started: true });
      // No 200 before the member had joined; once ready it owns keys and sees the seed.
      for (const p of probes) if (!p.started) expect(p.status).toBe(503);
      expect(joiner!.owners()).toContain('joiner');
      expect(joiner!.members().map((m) => m.nodeId).sort()).toEqual(['joiner', 'seed']);
    } finally {
      await (await starting.catch(() => undefined))?.stop({ graceful: false });
      await seed?.stop({ graceful: false });
      await seedGossip.release();
    }
  }, 30_000);
});
