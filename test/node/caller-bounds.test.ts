import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve.js';
import { CallerLedger, callerLimitsDefaults, type CallerConnection, type QueuedCall, type TrackedCall } from '../../src/node/api/caller-ledger.js';
import { rateLimiterClientConstructor, rateLimiterService } from '../../src/node/api/proto.js';
import { encodeStreamRequest } from '../../src/node/api/stream-codec.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import type { NodeOptionsInput } from '../../src/node/options.js';
import { startCluster, stopAll, waitFor } from './helpers.js';
import { ERROR, RawHttp2Client } from './raw-http2.js';

type TestCall = TrackedCall & QueuedCall & { resets: number; unsentBytes: number; unsentSinceMs: number; ranOn: string | undefined; expired: number };

const call = (unsentBytes = 0, unsentSinceMs = 0): TestCall => {
  const c: TestCall = {
    unsentBytes,
    unsentSinceMs,
    resets: 0,
    ranOn: undefined,
    expired: 0,
    silentSinceMs: -1,
    endSilent: () => undefined,
    reset: () => void c.resets++,
    admit: (connection) => void (c.ranOn = connection.peer),
    expire: () => void c.expired++,
  };
  return c;
};

/** A call that must run at once on `peer`'s connection. */
function open(ledger: CallerLedger, peer: string, c: TestCall = call()): CallerConnection {
  const opening = ledger.openCall(peer, c);
  if (typeof opening === 'string') throw new Error(`a call from ${peer} was ${opening}`);
  return opening;
}

describe('CallerLedger', () => {
  it('runs calls while the node has room; past maxOpenCalls they wait and run as calls close, and past maxQueuedCalls or after maxQueuedMs they are refused', () => {
    let now = 0;
    const ledger = new CallerLedger({ ...callerLimitsDefaults, maxOpenCalls: 3, maxQueuedCalls: 2, maxQueuedMs: 1_000 }, () => now);
    const a = open(ledger, '1.2.3.4:1');
    expect(open(ledger, '1.2.3.4:1')).toBe(a);
    const bCall = call();
    const b = open(ledger, '5.6.7.8:1', bCall);
    const first = call();
    const second = call();
    expect(ledger.openCall('9.9.9.9:1', first)).toBe('queued');
    now = 10;
    expect(ledger.openCall('1.2.3.4:2', second)).toBe('queued');
    expect(ledger.openCall('9.9.9.9:2', call())).toBe('refused'); // two already wait
    expect(ledger.stats).toMatchObject({ openCalls: 3, queuedCalls: 2, callsQueued: 2, refusedCalls: 1, connections: 2 });
    ledger.closeCall(b, bCall);
    expect(ledger.connection('5.6.7.8:1')).toBeUndefined(); // forgotten once its last call closed
    expect(first.ranOn).toBe('9.9.9.9:1'); // the oldest runs on the room made
    expect(second.ranOn).toBeUndefined();
    expect(ledger.stats).toMatchObject({ openCalls: 3, queuedCalls: 1 });
    now = 1_011;
    expect(ledger.sweep()).toBe(true);
    expect([first.expired, second.expired]).toEqual([0, 1]);
    expect(ledger.stats).toMatchObject({ openCalls: 3, queuedCalls: 0, refusedCalls: 2 });
  });

  it('bounds the calls of one host over all its connections (the others wait), and keeps a connection’s share while it has work in flight', () => {
    const ledger = new CallerLedger({ ...callerLimitsDefaults, maxCallsPerHost: 2 });
    const aCall = call();
    const a = open(ledger, '10.0.0.1:1000', aCall);
    open(ledger, '10.0.0.1:1001');
    const third = call();
    expect(ledger.openCall('10.0.0.1:1002', third)).toBe('queued'); // a third connection does not bring a third share
    open(ledger, '10.0.0.2:1000'); // another host is not held back
    ledger.takeItems(a, 5);
    ledger.closeCall(a, aCall);
    expect(third.ranOn).toBe('10.0.0.1:1002');
    expect(ledger.connection('10.0.0.1:1000')).toBe(a); // items still in flight: the share stays
    ledger.itemsDone(a, 5);
    expect(ledger.connection('10.0.0.1:1000')).toBeUndefined();
  });

  it('gives room to waiting hosts in turn, never to a call that ended while it waited, and holds a connection to its own bound', () => {
    const ledger = new CallerLedger({ ...callerLimitsDefaults, maxOpenCalls: 2, maxCallsPerConnection: 1 });
    const running = [call(), call()];
    const connections = [open(ledger, '1.1.1.1:1', running[0]), open(ledger, '2.2.2.2:1', running[1])];
    const order: string[] = [];
    const waiting = (name: string): TestCall => {
      const c = call();
      c.admit = () => void order.push(name);
      return c;
    };
    const a1 = waiting('a1');
    const a2 = waiting('a2');
    const gone = waiting('gone');
    const b1 = waiting('b1');
    ledger.openCall('3.3.3.3:1', a1);
    ledger.openCall('3.3.3.3:2', a2);
    ledger.openCall('3.3.3.3:3', gone);
    ledger.openCall('4.4.4.4:1', b1);
    ledger.leaveQueue(gone);
    ledger.closeCall(connections[0]!, running[0]!);
    ledger.closeCall(connections[1]!, running[1]!);
    expect(order).toEqual(['a1', 'b1']);
    // A second call of a connection at its own bound waits for that connection, even with room elsewhere.
    const roomy = new CallerLedger({ ...callerLimitsDefaults, maxCallsPerConnection: 1 });
    const firstCall = call();
    const c = open(roomy, '5.5.5.5:1', firstCall);
    const next = call();
    expect(roomy.openCall('5.5.5.5:1', next)).toBe('queued');
    open(roomy, '5.5.5.5:2');
    roomy.closeCall(c, firstCall);
    expect(next.ranOn).toBe('5.5.5.5:1');
    expect(roomy.stats.queuedCalls).toBe(0);
  });

  it('lets a connection with nothing unsent send one answer of any size, and bounds the rest (a quarter while the node is full)', () => {
    const ledger = new CallerLedger({ ...callerLimitsDefaults, maxUnsentBytesPerConnection: 1_000, maxUnsentBytes: 3_000 });
    const a = open(ledger, 'a:1');
    const b = open(ledger, 'b:1');
    expect(ledger.connectionFull(a, 50_000)).toBe(false);
    ledger.unsent(a, 600);
    expect(ledger.connectionFull(a, 400)).toBe(false);
    expect(ledger.connectionFull(a, 401)).toBe(true);
    ledger.unsent(b, 3_000); // the node as a whole is past its bound
    expect(ledger.nodeFull()).toBe(true);
    expect(ledger.connectionFull(a)).toBe(true); // 600 > 250
    ledger.sent(b, 3_000);
    ledger.sent(a, 600);
    expect(ledger.stats.unsentBytes).toBe(0);
  });

  it('bounds requests in flight per connection', () => {
    const ledger = new CallerLedger({ ...callerLimitsDefaults, maxItemsPerConnection: 10 });
    const a = open(ledger, 'a:1');
    expect(ledger.itemsFull(a, 10)).toBe(false);
    ledger.takeItems(a, 8);
    expect(ledger.itemsFull(a, 3)).toBe(true);
    ledger.itemsDone(a, 8);
    expect(ledger.itemsFull(a, 10)).toBe(false);
    expect(ledger.stats).toMatchObject({ items: 0, refusedItems: 1 });
  });

  it('lets a connection read a few requests at once, in turn', () => {
    const ledger = new CallerLedger({ ...callerLimitsDefaults, maxReadingCallsPerConnection: 1 });
    const a = open(ledger, 'a:1');
    const order: string[] = [];
    const waiter = (name: string) => ({ read: () => void order.push(name) });
    const first = waiter('first');
    const second = waiter('second');
    const third = waiter('third');
    expect(ledger.startReading(a, first)).toBe(true);
    expect(ledger.startReading(a, second)).toBe(false);
    expect(ledger.startReading(a, third)).toBe(false);
    ledger.stopWaiting(a, second); // ended before its turn
    ledger.doneReading(a);
    expect(order).toEqual(['third']);
    ledger.doneReading(a);
    expect(a.reading).toBe(0);
  });

  it('refuses a connection’s next request unread while large batches are past their share, if its last one was large', () => {
    const ledger = new CallerLedger(callerLimitsDefaults);
    const a = open(ledger, 'a:1');
    expect(ledger.mayRead(a)).toBe(true);
    a.lastRequestLarge = true;
    ledger.largeBatches.spent(10_000); // deep in debt
    expect(ledger.mayRead(a)).toBe(false);
    a.lastRequestLarge = false;
    expect(ledger.mayRead(a)).toBe(true);
    expect(ledger.stats.refusedUnread).toBe(1);
  });

  it('resets a call whose unsent answers made no progress for maxUnsentAgeMs, and no other', () => {
    let now = 0;
    const ledger = new CallerLedger({ ...callerLimitsDefaults, maxUnsentAgeMs: 1_000 }, () => now);
    const stalled = call(5_000, 0);
    const progressing = call(5_000, 0);
    const idle = call(0, 0);
    for (const c of [stalled, progressing, idle]) open(ledger, 'a:1', c);
    now = 900;
    progressing.unsentSinceMs = 900; // an answer went out
    expect(ledger.sweep()).toBe(true);
    expect(stalled.resets).toBe(0);
    now = 1_500;
    ledger.sweep();
    expect([stalled.resets, progressing.resets, idle.resets]).toEqual([1, 0, 0]);
  });
});

const service = rateLimiterService();
const batchBytes = (items: number, prefix: string): Buffer =>
  service['AllowBatch']!.requestSerialize({ requests: Array.from({ length: items }, (_, i) => ({ key: `${prefix}-${i}`, action: 'a', limit: 1_000_000, windowMs: 60_000 })) });
const framed = (message: Uint8Array): Buffer => {
  const out = Buffer.alloc(5 + message.byteLength);
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
};

/** A caller that sends and never reads what comes back (HTTP/2 flow control then holds the node's answers). */
function slowReader(address: string): { call: (path: string, body: Buffer, end: boolean) => http2.ClientHttp2Stream; rstCodes: number[]; close: () => void } {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => undefined);
  const rstCodes: number[] = [];
  return {
    rstCodes,
    call: (path, body, end) => {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => undefined);
      stream.on('close', () => rstCodes.push(stream.rstCode));
      stream.pause();
      if (end) stream.end(body);
      else stream.write(body);
      return stream;
    },
    close: () => session.destroy(),
  };
}

type Unary = (req: object, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Record<string, unknown>) => void) => void;
type PublicClient = grpc.Client & { allow: Unary; allowBatch: Unary; allowStream: () => grpc.ClientDuplexStream<object, object> };

describe('bounds per caller, on a real node', () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  const connect = (): PublicClient => {
    const Ctor = rateLimiterClientConstructor();
    const c = new Ctor(nodes[0]!.grpcAddress!, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as PublicClient;
    clients.push(c);
    return c;
  };
  const start = async (options: NodeOptionsInput): Promise<void> => {
    nodes = await startCluster(1, { replicas: 0, ...options });
  };
  const allow = (c: PublicClient, req: object): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => c.allow(req, { deadline: Date.now() + 5_000 }, (err) => resolve(err)));
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
  });

  it('tells each connection how many calls it may open: a gRPC channel queues the calls past it and every one is answered, none refused', async () => {
    await start({ callerLimits: { maxCallsPerConnection: 3 } });
    const node = nodes[0]!;
    const c = connect();
    // Five streams on one channel: three open on the node, two wait in the caller's HTTP/2 stack.
    const answered: number[] = [];
    const codes: number[] = [];
    const streams = Array.from({ length: 5 }, (_, i) => {
      const s = c.allowStream();
      s.on('error', (e: grpc.ServiceError) => codes.push(e.code));
      s.on('data', () => void answered.push(i));
      s.write({ requests: [{ id: 1, request: { key: `s${i}`, action: 'a', limit: 5, windowMs: 60_000 } }] });
      return s;
    });
    await waitFor(() => answered.length === 3, 5_000, 'three streams answered');
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toHaveLength(3);
    expect(node.stats().callers.openCalls).toBe(3);
    // As streams end, the waiting ones go out, on the same connection.
    for (const i of [...answered]) streams[i]!.end();
    await waitFor(() => answered.length === 5, 5_000, 'the two waiting streams answered');
    for (const s of streams) s.end();
    // Fifty unary calls at once on the same channel: all answered, three at a time.
    const errors = await Promise.all(Array.from({ length: 50 }, (_, i) => allow(c, { key: `u${i % 5}`, action: 'a', limit: 10, windowMs: 60_000 })));
    expect(errors.filter((e) => e !== null)).toEqual([]);
    expect(codes).toEqual([]);
    expect(node.stats().callers.refusedCalls).toBe(0);
  }, 20_000);

  it('a client that ignores the advertised bound has its extra streams refused by HTTP/2 (REFUSED_STREAM, or once it acknowledged the bound, its connection closed); the node serves on', async () => {
    await start({ callerLimits: { maxCallsPerConnection: 3 } });
    const node = nodes[0]!;
    const path = '/ringlimit.v1.RateLimiter/Allow';
    // Streams sent before it acknowledged the server's SETTINGS: refused one by one.
    const early = await RawHttp2Client.connect(node.grpcAddress!);
    early.openCalls(10, path);
    await waitFor(() => early.resets(ERROR.REFUSED_STREAM).length === 7, 5_000, 'seven streams refused');
    await waitFor(() => node.stats().callers.openCalls === 3, 5_000, 'three calls open');
    // Streams sent after it acknowledged them: a protocol error, which closes the connection
    // (nghttp2 finds it; Node then ends the session with GOAWAY INTERNAL_ERROR).
    const late = await RawHttp2Client.connect(node.grpcAddress!);
    await late.acknowledgeSettings();
    await new Promise((r) => setTimeout(r, 100)); // the server reads the acknowledgement first
    late.openCalls(10, path);
    await waitFor(() => late.isClosed, 5_000, 'the connection closed');
    expect([ERROR.PROTOCOL_ERROR, ERROR.INTERNAL_ERROR]).toContain(late.goAway());
    expect(await allow(connect(), { key: 'other', action: 'a', limit: 5, windowMs: 1_000 })).toBeNull();
    early.close();
    late.close();
    await waitFor(() => node.stats().callers.openCalls === 0, 5_000, 'the raw clients’ calls closed');
  }, 20_000);

  it('calls past a host’s bound wait for room (their requests unread) and run as its calls end: many busy channels of one host are slowed, not refused', async () => {
    await start({ callerLimits: { maxCallsPerHost: 4 } });
    const node = nodes[0]!;
    // Four channels (four connections) of one host, 40 unary calls each at once: 4 run at a time.
    const channels = Array.from({ length: 4 }, () => connect());
    const errors = await Promise.all(channels.flatMap((c, i) => Array.from({ length: 40 }, (_, j) => allow(c, { key: `h${i}-${j % 4}`, action: 'a', limit: 100, windowMs: 60_000 }))));
    expect(errors.filter((e) => e !== null)).toEqual([]);
    expect(node.stats().callers).toMatchObject({ refusedCalls: 0, queuedCalls: 0 });
    expect(node.stats().callers.callsQueued).toBeGreaterThan(0);
  }, 30_000);

  it('a call that waits longer than maxQueuedMs is refused with RESOURCE_EXHAUSTED; one its caller gives up on leaves the queue', async () => {
    await start({ callerLimits: { maxCallsPerHost: 2, maxQueuedMs: 300 } });
    const node = nodes[0]!;
    const c = connect();
    // Two long-lived streams hold the host's share.
    const held = [c.allowStream(), c.allowStream()];
    for (const s of held) {
      s.on('data', () => undefined);
      s.on('error', () => undefined);
      s.write({ requests: [{ id: 1, request: { key: 'held', action: 'a', limit: 5, windowMs: 60_000 } }] });
    }
    await waitFor(() => node.stats().callers.openCalls === 2, 5_000, 'two streams open');
    const askedAt = Date.now();
    const waited = await allow(c, { key: 'late', action: 'a', limit: 5, windowMs: 60_000 });
    expect(Date.now() - askedAt).toBeGreaterThanOrEqual(300);
    expect(waited?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(waited?.details).toMatch(/waited 300 ms for room/);
    const gaveUp = await new Promise<grpc.ServiceError | null>((resolve) => c.allow({ key: 'late', action: 'a', limit: 5, windowMs: 60_000 }, { deadline: Date.now() + 100 }, (err) => resolve(err)));
    expect(gaveUp?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => node.stats().callers.queuedCalls === 0, 5_000, 'the queue empty');
    expect(node.stats().callers.refusedCalls).toBe(1);
    for (const s of held) s.end();
    expect(await allow(c, { key: 'after', action: 'a', limit: 5, windowMs: 60_000 })).toBeNull();
  }, 20_000);

  it('bounds the requests in flight on one connection', async () => {
    await start({ callerLimits: { maxItemsPerConnection: 50 } });
    const c = connect();
    const batch = (n: number) => ({ requests: Array.from({ length: n }, (_, i) => ({ key: `k${i}`, action: 'a', limit: 5, windowMs: 1_000 })) });
    const err = await new Promise<grpc.ServiceError | null>((resolve) => c.allowBatch(batch(60), {}, (e) => resolve(e)));
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const ok = await new Promise<grpc.ServiceError | null>((resolve) => c.allowBatch(batch(40), {}, (e) => resolve(e)));
    expect(ok).toBeNull();
  }, 20_000);

  it('a caller that stops reading: its unsent answers stay within its bound, its calls are reset with RESOURCE_EXHAUSTED, others keep being answered, and all it held is released when it leaves', async () => {
    const bound = 256 * 1024;
    await start({ callerLimits: { maxUnsentBytesPerConnection: bound, maxUnsentAgeMs: 400 } });
    const node = nodes[0]!;
    const slow = slowReader(node.grpcAddress!);
    // Each answer (~100 KB) is larger than the 64 KB HTTP/2 window of a caller that does not read.
    for (let i = 0; i < 12; i++) slow.call('/ringlimit.v1.RateLimiter/AllowBatch', framed(batchBytes(2_000, `slow${i}`)), true);
    const stream = slow.call('/ringlimit.v1.RateLimiter/AllowStream', Buffer.alloc(0), false);
    for (let i = 0; i < 10; i++) {
      const requests = Array.from({ length: 1_000 }, (_, j) => ({ id: j, request: { key: `s${i}-${j}`, action: 'a', limit: 1_000_000, windowMs: 60_000 }, maxWaitMs: undefined, timestampMs: 0 }));
      stream.write(framed(encodeStreamRequest(requests)));
    }
    let maxUnsent = 0;
    const good = connect();
    let goodErrors = 0;
    const endAt = Date.now() + 1_500;
    while (Date.now() < endAt) {
      maxUnsent = Math.max(maxUnsent, node.stats().callers.unsentBytes);
      if ((await allow(good, { key: 'good', action: 'g', limit: 1_000_000, windowMs: 60_000 })) !== null) goodErrors++;
    }
    await waitFor(() => slow.rstCodes.includes(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM), 5_000, 'a slow call reset');
    expect(goodErrors).toBe(0);
    expect(maxUnsent).toBeGreaterThan(0);
    expect(maxUnsent).toBeLessThanOrEqual(bound);
    expect(node.stats().callers.cancelledSlowStreams).toBeGreaterThan(0);
    slow.close();
    await waitFor(() => node.stats().callers.openCalls <= 1, 5_000, 'the slow caller’s calls to close'); // the good client's channel may hold none
    // Its batches' slices under way stop at their next step (their calls are cancelled), and a call
    // still open above (openCalls ≤ 1 counts one) gives back its unsent answers when the server sees
    // it cancelled: released within a slice or a turn, not at once on a busy machine.
    await waitFor(() => node.stats().callers.items === 0 && node.stats().callers.unsentBytes === 0, 5_000, 'the slow caller’s batches and unsent answers to be released');
    expect(node.stats().callers).toMatchObject({ unsentBytes: 0, items: 0 });
  }, 30_000);

  it('a stream whose caller does not read gets no more of its requests read: the work done for it stays bounded', async () => {
    await start({});
    const node = nodes[0]!;
    const slow = slowReader(node.grpcAddress!);
    const stream = slow.call('/ringlimit.v1.RateLimiter/AllowStream', Buffer.alloc(0), false);
    for (let i = 0; i < 200; i++) {
      const requests = Array.from({ length: 1_000 }, (_, j) => ({ id: j, request: { key: `bp${i}-${j}`, action: 'a', limit: 1_000_000, windowMs: 60_000 }, maxWaitMs: undefined, timestampMs: 0 }));
      stream.write(framed(encodeStreamRequest(requests)));
    }
    await new Promise((r) => setTimeout(r, 1_500));
    // 200 messages of 1,000 were sent; the node stopped reading once its answers backed up (16 messages queued, plus HTTP/2's windows).
    expect(node.stats().store.decisions).toBeLessThan(60_000);
    slow.close();
  }, 30_000);

  it('names a bad callerLimits option, and serve takes them as --caller-limit NAME=N', async () => {
    await expect(createNode({ port: 0, gossipPort: 0, callerLimits: { maxOpenCalls: 0 } })).rejects.toThrow(/callerLimits\.maxOpenCalls/);
    expect(parseServeArgs(['--caller-limit', 'maxCallsPerConnection=20', '--caller-limit', 'maxUnsentAgeMs=3000']).options.callerLimits).toEqual({ maxCallsPerConnection: 20, maxUnsentAgeMs: 3_000 });
    expect(() => parseServeArgs(['--caller-limit', 'maxCalls=20'])).toThrow(/--caller-limit must be NAME=N/);
    expect(parseServeArgs(['--caller-limit', 'maxQueuedCalls=500', '--caller-limit', 'maxQueuedMs=2000']).options.callerLimits).toEqual({ maxQueuedCalls: 500, maxQueuedMs: 2_000 });
    await expect(createNode({ port: 0, gossipPort: 0, callerLimits: { maxQueuedMs: 0 } })).rejects.toThrow(/callerLimits\.maxQueuedMs/);
  });
});
