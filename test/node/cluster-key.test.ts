import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve.js';
import { encodeMessage } from '../../src/gossip/message-codec.js';
import { clusterKeyPlan, localKeyPath, readOrCreateLocalKey, type ClusterKeyInput } from '../../src/node/cluster/cluster-key.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { resolveNodeOptions } from '../../src/node/options.js';
import { PEER_METHOD } from '../../src/node/transport/grpc-peer-transport.js';
import { builtCli } from '../chaos/built-cli.js';
import { waitFor } from './helpers.js';

/** Issue 28, finding 6: with no flags, anyone who reached the ports was a member. */

const work = mkdtempSync(join(tmpdir(), 'ringlimit-cluster-key-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const base: ClusterKeyInput = { cluster: true, membership: undefined, host: '127.0.0.1', join: [], gossipKeys: [], localClusterKey: false, insecureNoClusterKey: false };

describe('which cluster key a member uses', () => {
  it('one host: the per-user local key (serve) or none with a warning (embedded); beyond it: refused, unless insecure; a lone node: its own', () => {
    const env = { XDG_STATE_HOME: '/state' };
    expect(clusterKeyPlan({ ...base, gossipKeys: ['k'] }, env).kind).toBe('configured');
    expect(clusterKeyPlan({ ...base, localClusterKey: true, join: ['127.0.0.1:7946', 'localhost:7947', '[::1]:7948'] }, env)).toEqual({ kind: 'local', path: '/state/ringlimit/local-cluster.key' });
    expect(clusterKeyPlan({ ...base, join: ['127.0.0.1:7946'] }, env).kind).toBe('none');
    expect(clusterKeyPlan({ ...base, localClusterKey: true, host: '10.0.0.5', join: ['10.0.0.6:7946'] }, env).kind).toBe('refused');
    expect(clusterKeyPlan({ ...base, localClusterKey: true, join: ['10.0.0.6:7946'] }, env).kind).toBe('refused'); // a seed on another host
    expect(clusterKeyPlan({ ...base, localClusterKey: true, host: '0.0.0.0', join: ['seeds.example:7946'] }, env).kind).toBe('refused');
    expect(clusterKeyPlan({ ...base, host: '10.0.0.5', join: ['10.0.0.6:7946'], insecureNoClusterKey: true }, env).kind).toBe('none');
    expect(clusterKeyPlan({ ...base, localClusterKey: true, host: '10.0.0.5' }, env).kind).toBe('own');
    expect(clusterKeyPlan({ ...base, cluster: false }, env).kind).toBe('notMember');
    expect(localKeyPath({})).toMatch(/\.local\/state\/ringlimit\/local-cluster\.key$/);
  });

  it('serve refuses a cluster beyond this host without a key, names the way out, and takes --insecure-no-cluster-key', () => {
    const multiHost = ['--host', '10.0.0.5', '--join', '10.0.0.6:7946'];
    expect(() => resolveNodeOptions(parseServeArgs(multiHost).options)).toThrow(/needs a cluster key.*--gossip-key-file.*--insecure-no-cluster-key/);
    expect(resolveNodeOptions(parseServeArgs([...multiHost, '--insecure-no-cluster-key']).options).insecureNoClusterKey).toBe(true);
    expect(() => resolveNodeOptions({ host: '10.0.0.5', join: ['10.0.0.6:7946'] })).toThrow(/needs a cluster key/);
  });

  it('the local key is made once (mode 0600) and read back the same; a key file others can read is refused', () => {
    const path = join(work, 'state-a', 'ringlimit', 'local-cluster.key');
    const key = readOrCreateLocalKey(path);
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readOrCreateLocalKey(path)).toBe(key);
    const loose = join(work, 'loose.key');
    writeFileSync(loose, `${key}\n`);
    chmodSync(loose, 0o644);
    expect(() => readOrCreateLocalKey(loose)).toThrow(/other users/);
  });
});

describe('an embedded one-host cluster without a key', () => {
  let node: RingLimitNode | undefined;
  afterEach(async () => {
    await node?.stop({ graceful: false });
    node = undefined;
  });

  it('warns on every start (a warning event, heard by a listener added after createNode)', async () => {
    node = await createNode({ nodeId: 'solo', port: 0, gossipPort: 0, gossipPreset: 'test', clusterName: `ck-${process.pid}` });
    const warnings: string[] = [];
    node.on('warning', (error) => warnings.push(error.message));
    await waitFor(() => warnings.length > 0, 2_000, 'the warning');
    expect(warnings[0]).toMatch(/NO CLUSTER KEY/);
  });
});

interface Served {
  child: ChildProcess;
  ready: { nodeId: string; grpc: string; gossip: string; http: string };
  logs: Record<string, unknown>[];
}

async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<Served> {
  const child = spawn(process.execPath, [builtCli(), 'serve', '--ready-json', '--http-port', '0', '--gossip-preset', 'test', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  children.push(child);
  const logs: Record<string, unknown>[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ raw: line });
    }
  });
  const ready = await new Promise<Served['ready']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve ${args.join(' ')} not ready: ${JSON.stringify(logs)}`)), 20_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as Served['ready']);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${String(code)}: ${JSON.stringify(logs)}`));
    });
  });
  return { child, ready, logs };
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

async function clusterMembers(node: Served): Promise<string[]> {
  const body = (await (await fetch(`http://${node.ready.http}/v1/cluster`)).json()) as { members: { nodeId: string }[] };
  return body.members.map((m) => m.nodeId).sort();
}

describe('`ringlimit serve` with no key flags, two nodes on 127.0.0.1 (finding 6, as the probe ran it)', () => {
  it('they share the per-user key: an unsigned Sync does not make "evil" a member, and a peer stream under a member\'s id is refused', async () => {
    const env = { ...process.env, XDG_STATE_HOME: join(work, 'state-serve') };
    const o1 = await serve(['--node-id', 'o1', '--port', '0', '--gossip-port', '0'], env);
    const o2 = await serve(['--node-id', 'o2', '--port', '0', '--gossip-port', '0', '--join', o1.ready.gossip], env);
    for (let tries = 0; (await clusterMembers(o1)).join() !== 'o1,o2' || (await clusterMembers(o2)).join() !== 'o1,o2'; tries++) {
      if (tries > 150) throw new Error('two members: not within 15 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(statSync(join(work, 'state-serve', 'ringlimit', 'local-cluster.key')).mode & 0o777).toBe(0o600);
    expect(o1.logs.some((l) => typeof l['keyFile'] === 'string')).toBe(true);
    expect(o1.logs.some((l) => /NO CLUSTER KEY/.test(String(l['err'])))).toBe(false);

    // The probe's packet: an unsigned Sync naming "evil", with a gRPC address, as a member.
    const evil = createSocket('udp4');
    await new Promise<void>((resolve) => evil.bind(0, '127.0.0.1', resolve));
    const record = { nodeId: 'evil', address: `127.0.0.1:${evil.address().port}`, generation: Date.now(), incarnation: 0, state: 'alive' as const, meta: { grpc: '127.0.0.1:1', state: 'active' } };
    const packet = encodeMessage({ type: 'sync', from: 'evil', wantsReply: false, members: [record] }, undefined);
    for (let i = 0; i < 5; i++) {
      for (const node of [o1, o2]) {
        const [host, port] = [node.ready.gossip.slice(0, node.ready.gossip.lastIndexOf(':')), Number(node.ready.gossip.slice(node.ready.gossip.lastIndexOf(':') + 1))];
        evil.send(packet, port, host);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1_000));
    evil.close();
    expect(await clusterMembers(o1)).toEqual(['o1', 'o2']);
    expect(await clusterMembers(o2)).toEqual(['o1', 'o2']);

    // The probe's peer stream: opened with `ringlimit-node-id: o2`, no proof.
    const client = new grpc.Client(o1.ready.grpc, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('ringlimit-node-id', 'o2');
    const stream = client.makeBidiStreamRequest(PEER_METHOD, (b: Buffer) => b, (b: Buffer) => b, metadata);
    const code = await new Promise<number>((resolve) => {
      stream.on('error', (error: grpc.ServiceError) => resolve(error.code));
      stream.on('data', () => undefined);
      stream.write(Buffer.from([0x94, 1, 6, 9, 0xc0]));
      setTimeout(() => resolve(-1), 5_000);
    });
    client.close();
    expect(code).toBe(grpc.status.UNAUTHENTICATED);
  }, 60_000);

  it('with --insecure-no-cluster-key it starts, and says loudly that it runs without authentication', async () => {
    const env = { ...process.env, XDG_STATE_HOME: join(work, 'state-insecure') };
    const node = await serve(['--node-id', 'lone', '--port', '0', '--gossip-port', '0', '--insecure-no-cluster-key'], env);
    await waitFor(() => node.logs.some((l) => l['level'] !== undefined && /NO CLUSTER KEY/.test(String(l['err']))), 5_000, 'the warning line');
    const line = node.logs.find((l) => /NO CLUSTER KEY/.test(String(l['err'])))!;
    expect(String(line['level'])).toMatch(/warn|40/);
  }, 30_000);
});
