import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import type { NodeOptionsInput } from '../../src/node/options.js';
import { PEER_METHOD } from '../../src/node/transport/grpc-peer-transport.js';
import { startCluster, stopAll, waitFor } from './helpers.js';
import { RawHttp2Client } from './raw-http2.js';

const TOKEN = 'api-token-0123456789abcdef';
const identity = (b: Buffer): Buffer => b;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Unary = (req: object, metadata: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void;
type PublicClient = grpc.Client & { allow: Unary };

/** A TCP connection from `localAddress` (another loopback address: another host to the node) that sends `send` and then nothing. */
function idleSocket(address: string, localAddress: string, send = ''): Promise<Socket & { gone: boolean }> {
  const at = address.lastIndexOf(':');
  const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)), localAddress }) as Socket & { gone: boolean };
  socket.gone = false;
  socket.on('error', () => undefined);
  socket.on('close', () => void (socket.gone = true));
  // Refused at once, it may be reset before it saw itself connected.
  return new Promise((resolve) => {
    socket.once('close', () => resolve(socket));
    socket.once('connect', () => {
      if (send !== '') socket.write(send);
      resolve(socket);
    });
  });
}

describe('API bounds against a hostile network (issue 28)', () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  const sockets: Socket[] = [];
  const start = async (options: NodeOptionsInput): Promise<RingLimitNode> => {
    nodes = await startCluster(1, { replicas: 0, ...options });
    return nodes[0]!;
  };
  const connectPublic = (node: RingLimitNode): PublicClient => {
    const Ctor = rateLimiterClientConstructor();
    const c = new Ctor(node.grpcAddress!, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as PublicClient;
    clients.push(c);
    return c;
  };
  /** A well-behaved caller from 127.0.0.1: `calls` Allow calls with the token; the errors it got. */
  const bystander = async (node: RingLimitNode, calls: number): Promise<string[]> => {
    const c = connectPublic(node);
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${TOKEN}`);
    const errors: string[] = [];
    for (let i = 0; i < calls; i++) {
      const error = await new Promise<grpc.ServiceError | null>((resolve) => c.allow({ key: `b${i}`, limit: 100, windowMs: 60_000 }, metadata, { deadline: Date.now() + 3_000 }, resolve));
      if (error !== null) errors.push(error.message);
    }
    return errors;
  };
  const post = (node: RingLimitNode, path: string, body: unknown) =>
    fetch(`http://${node.httpAddress!}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of sockets.splice(0)) s.destroy();
    await stopAll(nodes);
    nodes = [];
  });

  it('finding 1: credentials are checked on the headers, before a call takes a slot — 200 tokenless calls that never send a body hold nothing', async () => {
    const node = await start({ apiTokens: [TOKEN] });
    const attackers = await Promise.all([RawHttp2Client.connect(node.grpcAddress!, '127.0.0.2'), RawHttp2Client.connect(node.grpcAddress!, '127.0.0.3')]);
    for (const a of attackers) {
      await a.acknowledgeSettings();
      a.openCalls(100, '/ringlimit.v1.RateLimiter/Allow');
    }
    await sleep(300);
    // Before: every one was open on the ledger (the token was checked only when its message came).
    expect(node.stats().callers.openCalls + node.stats().callers.queuedCalls).toBe(0);
    expect(await bystander(node, 20)).toEqual([]);
    for (const a of attackers) a.close();
  });

  it('finding 1: a unary call with a token that never sends its request is ended after maxFirstMessageMs, and its slot freed', async () => {
    const node = await start({ apiTokens: [TOKEN], callerLimits: { maxFirstMessageMs: 500, maxOpenCalls: 100, maxQueuedCalls: 50 } });
    const attacker = await RawHttp2Client.connect(node.grpcAddress!, '127.0.0.2');
    await attacker.acknowledgeSettings();
    attacker.openCalls(100, '/ringlimit.v1.RateLimiter/Allow', { authorization: `Bearer ${TOKEN}` });
    await waitFor(() => node.stats().callers.openCalls === 100, 5_000, 'the silent calls to run');
    // The node is full: a bystander's call waits; before, it waited until maxQueuedMs and was refused, as the silent calls never ended.
    const errors = bystander(node, 5);
    await waitFor(() => node.stats().callers.endedSilentCalls >= 100, 5_000, 'the silent calls to be ended');
    expect(await errors).toEqual([]);
    await waitFor(() => node.stats().callers.openCalls === 0, 2_000, 'every slot to be free');
    attacker.close();
  });

  it('finding 2: idle and half-open connections are bounded per host and in all, and closed when they make no authorized call in time; a caller still gets in', async () => {
    const node = await start({ apiTokens: [TOKEN], httpPort: 0, callerLimits: { maxConnections: 30, maxConnectionsPerHost: 10, maxConnectionSetupMs: 800 } });
    // 127.0.0.2 and .4: TCP connections to the gRPC port that send nothing; 127.0.0.3: HTTP slowloris (headers never finished).
    for (const [host, address, send] of [
      ['127.0.0.2', node.grpcAddress!, ''],
      ['127.0.0.3', node.httpAddress!, 'POST /v1/allow HTTP/1.1\r\nHost: x\r\n'],
      ['127.0.0.4', node.grpcAddress!, 'PRI * HTTP/2.0\r\n'],
    ] as const) {
      for (let i = 0; i < 15; i++) sockets.push(await idleSocket(address, host, send));
    }
    await sleep(200);
    const open = (host: string) => sockets.filter((s) => !(s as Socket & { gone: boolean }).gone && s.localAddress === host).length;
    // Before: all 45 stayed open (until the process ran out of file descriptors).
    expect(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map(open)).toEqual([10, 10, 10]);
    // The node is at maxConnections with connections that never authenticated: a caller's new connection takes the place of the oldest.
    expect(await bystander(node, 10)).toEqual([]);
    expect((await post(node, '/v1/allow', { key: 'h', limit: 10, windowMs: 60_000 })).status).toBe(200);
    await waitFor(() => sockets.every((s) => (s as Socket & { gone: boolean }).gone), 3_000, 'every idle connection to be closed');
  });

  it('finding 2: a stopping mTLS node closes the connections that never finished their handshake (they kept the process alive)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringlimit-api-bounds-'));
    try {
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ca');
      run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'node.key', '-out', 'node.crt', '-days', '2', '-subj', '/CN=node', '-addext', 'subjectAltName=IP:127.0.0.1', '-CA', 'ca.crt', '-CAkey', 'ca.key');
      const file = (name: string) => readFileSync(join(dir, name));
      const node = await createNode({ nodeId: 'tls0', port: 0, gossipPort: 0, gossipPreset: 'test', replicas: 0, httpPort: 0, tls: { cert: file('node.crt'), key: file('node.key'), ca: file('ca.crt') } });
      for (let i = 0; i < 10; i++) sockets.push(await idleSocket(node.grpcAddress!, '127.0.0.2', '\x16\x03\x01'));
      for (let i = 0; i < 10; i++) sockets.push(await idleSocket(node.httpAddress!, '127.0.0.2', '\x16\x03\x01'));
      await sleep(100);
      await node.stop();
      await waitFor(() => sockets.every((s) => (s as Socket & { gone: boolean }).gone), 1_000, 'the half-open connections to be closed by the stop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finding 3: /v1/allow-batch is on the same caller ledger as gRPC — requests in flight, silent bodies and large batches are bounded', async () => {
    const node = await start({ apiTokens: [TOKEN], httpPort: 0, callerLimits: { maxItemsPerConnection: 50, maxFirstMessageMs: 500 } });
    const batch = (n: number, prefix = 'k') => ({ requests: Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, limit: 1_000_000, windowMs: 60_000 })) });
    // Before: 200 for any batch up to 10,000, whatever the connection had in flight.
    const over = await post(node, '/v1/allow-batch', batch(60));
    expect(over.status).toBe(429);
    expect(((await over.json()) as { code: string }).code).toBe('RESOURCE_EXHAUSTED');
    expect((await post(node, '/v1/allow-batch', batch(40))).status).toBe(200);
    // A request whose body never comes is a call on the ledger, ended after maxFirstMessageMs.
    const silent = await idleSocket(node.httpAddress!, '127.0.0.2', `POST /v1/allow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 100\r\n\r\n`);
    sockets.push(silent);
    await waitFor(() => node.stats().callers.openCalls === 1, 2_000, 'the silent request to be on the ledger');
    await waitFor(() => (silent as Socket & { gone: boolean }).gone, 3_000, 'the silent request to be ended');
    expect(node.stats().callers.endedSilentCalls).toBeGreaterThanOrEqual(1);
  });

  it('finding 3: a flood of 10,000-item HTTP batches is held to the large batches’ share of the event loop, as over gRPC', async () => {
    const node = await start({ apiTokens: [TOKEN], httpPort: 0 });
    const body = { requests: Array.from({ length: 10_000 }, (_, i) => ({ key: `f${i}`, limit: 1_000_000, windowMs: 60_000 })) };
    const statuses = await Promise.all(Array.from({ length: 12 }, () => post(node, '/v1/allow-batch', body).then((r) => r.status)));
    // Before: 12 × 200, every one parsed and decided at once.
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(node.stats().callers.refusedLarge).toBeGreaterThan(0);
    expect(await bystander(node, 5)).toEqual([]);
  });

  it('item 8: a 10,001-request AllowBatch and a 65-descriptor Envoy request are refused by counting, before anything is decoded', async () => {
    const node = await start({});
    const raw = new grpc.Client(node.grpcAddress!, grpc.credentials.createInsecure());
    clients.push(raw);
    const call = (path: string, bytes: Buffer) => new Promise<grpc.ServiceError | null>((resolve) => raw.makeUnaryRequest(path, identity, identity, bytes, (error) => resolve(error)));
    // The first request is malformed (a key longer than its message): decoding first said "malformed"; counting first refuses the count.
    const items = Buffer.concat([Buffer.from([0x0a, 0x02, 0x0a, 0x05]), Buffer.alloc(10_000 * 2, Buffer.from([0x0a, 0x00]))]);
    const batchError = await call('/ringlimit.v1.RateLimiter/AllowBatch', items);
    expect(batchError?.details).toMatch(/at most 10000 per batch/);
    // 64 well-formed descriptors, then a 65th whose length runs past the end: decoding it failed the whole message (1.7 s for 200,000 of them).
    const descriptor = Buffer.from([0x12, 0x07, 0x0a, 0x05, 0x0a, 0x01, 0x6b, 0x12, 0x00]); // { entries: [{ key: 'k', value: '' }] }
    const envoy = Buffer.concat([Buffer.from([0x0a, 0x01, 0x64]), ...Array.from({ length: 64 }, () => descriptor), Buffer.from([0x12, 0x7f])]);
    const envoyError = await call('/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit', envoy);
    expect(envoyError?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(envoyError?.details).toMatch(/descriptors: at most 64/);
    const many = Buffer.concat([Buffer.from([0x0a, 0x01, 0x64]), Buffer.alloc(200_000 * descriptor.length, descriptor)]);
    const started = performance.now();
    expect((await call('/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit', many))?.details).toMatch(/descriptors: at most 64/);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('item 8: peer streams with no valid hello: the connection is sent away at the first, and a host past maxUnauthenticatedPerHostPerSecond is shut out for a second; callers on other hosts are not', async () => {
    const node = await start({});
    const port = Number(node.grpcAddress!.split(':')[1]);
    /** One connection from 127.0.0.2 opening `streams` peer streams at once: how many were answered (refused), and whether the node closed it. */
    const attempt = (streams: number) =>
      new Promise<{ answered: number; closed: boolean }>((resolve) => {
        const session = http2.connect(`http://${node.grpcAddress!}`, { createConnection: () => connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }) });
        session.on('error', () => undefined);
        let answered = 0;
        const timer = setTimeout(() => {
          session.destroy();
          resolve({ answered, closed: false });
        }, 2_000);
        session.on('close', () => {
          clearTimeout(timer);
          resolve({ answered, closed: true });
        });
        for (let i = 0; i < streams; i++) {
          const stream = session.request({ ':method': 'POST', ':path': PEER_METHOD, 'content-type': 'application/grpc', te: 'trailers', 'ringlimit-node-id': `intruder-${i}` });
          stream.on('error', () => undefined);
          stream.on('response', () => void answered++);
          stream.end();
        }
      });
    // Before: the connection stayed open and all 50 streams were refused one by one.
    const first = await attempt(50);
    expect(first.closed).toBe(true);
    expect(first.answered).toBeLessThan(5);
    const rest = [];
    for (let i = 0; i < 40; i++) rest.push(await attempt(1));
    // Past 20 refusals a second, the host's connections are closed before a stream is read.
    expect(rest.every((r) => r.closed)).toBe(true);
    expect(rest.filter((r) => r.answered === 0).length).toBeGreaterThan(10);
    expect(await bystander(node, 5)).toEqual([]);
  });
});
