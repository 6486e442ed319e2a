import { createSocket } from 'node:dgram';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../deployment/processes.js';
import { describe, expect, it } from 'vitest';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import { createNode } from '../../src/node/node.js';

/** A port free right now on 127.0.0.1 (TCP). */
/** A UDP port free right now on 127.0.0.1. */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** A UDP port nobody answers on (bound and silent while the test runs). */
function silentSeed(): Promise<{ address: string; close: () => void }> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1', () => resolve({ address: `127.0.0.1:${socket.address().port}`, close: () => socket.close() }));
  });
}

type Allow = (req: object, cb: (err: grpc.ServiceError | null, res?: { allowed?: boolean }) => void) => void;

describe('a member still joining', () => {
  it('serves its API from the start but decides nothing until it has a ring: callers get UNAVAILABLE and fail over (a restarted node decided from fresh state here, over-admitting)', async () => {
    const port = await freePort();
    const seed = await silentSeed();
    // Its seed never answers: the node stays in join() for joinTimeoutMs, its gRPC port open, then gives up.
    const starting = createNode({ nodeId: 'joiner', port, gossipPort: 0, gossipPreset: 'test', join: [seed.address], joinTimeoutMs: 3_000, clusterName: `joining-${process.pid}` }).then(
      () => 'started',
      (error: Error) => error.message,
    );
    const Ctor = rateLimiterClientConstructor();
    const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { allow: Allow };
    try {
      const answers: string[] = [];
      const deadline = Date.now() + 3_000;
      while (answers.length < 5 && Date.now() < deadline) {
        const answer = await new Promise<string>((resolve) =>
          client.allow({ key: `k${answers.length}`, action: 'a', limit: 5, windowMs: 60_000 }, (err, res) => resolve(err === null ? `allowed=${String(res?.allowed)}` : `${grpc.status[err.code]}: ${err.details}`)),
        );
        if (!answer.startsWith('UNAVAILABLE: No connection')) answers.push(answer);
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(answers.length).toBeGreaterThan(0);
      for (const a of answers) expect(a).toMatch(/^UNAVAILABLE: .*no ring yet/);
    } finally {
      client.close();
      expect(await starting).toMatch(/no seed answered/);
      seed.close();
    }
  }, 20_000);

  it('without joinTimeoutMs, a member whose seeds do not answer stays up as a one-node cluster, and joins when a seed appears', async () => {
    const seedPort = await freeUdpPort();
    const name = `alone-${process.pid}`;
    const alone = await createNode({ nodeId: 'alone', port: 0, gossipPort: 0, gossipPreset: 'test', join: [`127.0.0.1:${seedPort}`], clusterName: name });
    let seed: Awaited<ReturnType<typeof createNode>> | undefined;
    try {
      // Up, and deciding alone.
      expect(alone.owners()).toEqual(['alone']);
      expect((await alone.allow({ key: 'k', limit: 1, windowMs: 60_000 })).allowed).toBe(true);
      // The seed appears where it was said to be: the node's retries find it.
      seed = await createNode({ nodeId: 'seed', port: 0, gossipPort: seedPort, gossipPreset: 'test', clusterName: name });
      const deadline = Date.now() + 15_000;
      while (alone.members().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(alone.members().map((m) => m.nodeId).sort()).toEqual(['alone', 'seed']);
    } finally {
      await alone.stop({ graceful: false });
      await seed?.stop({ graceful: false });
    }
  }, 30_000);
});
