import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import { freePorts, startProcess, stopAll, untilOutput } from '../deployment/processes.js';

/**
 * Issue 28, finding 7, at the process level: a `serve` node given a 150,000-user document (6 MB, within the 8 MB a peer frame carries) by
 * the admin SetPolicies keeps answering a bystander's Allow calls while it parses and applies
 * it (before: 30k users froze the node for 11.5 s, with the bystander's calls past their deadline).
 */
const CLI = process.env['RINGLIMIT_CLI'] ?? join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const ADMIN = 'admin-token-0123456789abcdef0123';
const USERS = 150_000;

type Call = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { version?: number }) => void) => void;

afterAll(() => stopAll());

describe('SetPolicies with a large document', () => {
  it('is applied while a bystander keeps being answered (0 errors, p99 bounded)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringlimit-bystander-'));
    writeFileSync(join(dir, 'admin'), `${ADMIN}\n`);
    const [port, gossipPort] = await freePorts(2, ['127.0.0.1']);
    const node = startProcess('n1', process.execPath, [CLI, 'serve', '--node-id', 'n1', '--port', String(port), '--gossip-port', String(gossipPort), '--admin-token-file', join(dir, 'admin')], { ...process.env });
    await untilOutput(node, /serving/, 20_000);
    const client = new (rateLimiterClientConstructor())(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 }) as unknown as grpc.Client & Record<string, Call>;
    const call = (method: string, request: object, token: string | undefined, deadlineMs: number): Promise<{ error: grpc.ServiceError | null; ms: number; version?: number }> => {
      const metadata = new grpc.Metadata();
      if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
      const started = performance.now();
      return new Promise((resolve) =>
        client[method]!.call(client, request, metadata, { deadline: Date.now() + deadlineMs }, (error, res) => resolve({ error, ms: performance.now() - started, version: res?.version })),
      );
    };
    try {
      const users: Record<string, unknown> = {};
      for (let i = 0; i < USERS; i++) users[`user-${i}`] = { group: 'pro', weight: 2 };
      const document = JSON.stringify({ defaults: { '*': { limit: 1_000_000, window: '1m' } }, groups: { pro: { weight: 5 } }, users });
      // Warm the bystander's path.
      for (let i = 0; i < 20; i++) await call('allow', { key: `b${i}`, action: 'x', limit: 1_000, windowMs: 60_000 }, undefined, 2_000);
      const latencies: number[] = [];
      let errors = 0;
      let applying = true;
      const bystander = (async () => {
        for (let i = 0; applying; i++) {
          const r = await call('allow', { key: `b${i % 100}`, action: 'x', limit: 1_000_000, windowMs: 60_000 }, undefined, 2_000);
          if (r.error !== null) errors++;
          latencies.push(r.ms);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const set = await call('setPolicies', { document }, ADMIN, 60_000);
      applying = false;
      await bystander;
      expect(set.error).toBeNull();
      expect(set.version).toBeGreaterThan(0);
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
      console.log(`SetPolicies of ${USERS} users (${document.length} bytes): bystander ${latencies.length} calls, ${errors} errors, p50 ${latencies[Math.floor(latencies.length / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${latencies[latencies.length - 1]!.toFixed(1)} ms`);
      expect(errors).toBe(0);
      expect(latencies.length).toBeGreaterThan(20);
      expect(p99).toBeLessThan(500);
      // The document is in force: a listed user's limit is the policy's, times its weight.
      const resolved = await call('allow', { key: 'user-149999', action: 'x' }, undefined, 2_000);
      expect(resolved.error).toBeNull();
    } finally {
      client.close();
    }
  }, 120_000);
});
