import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:http2';
import { createConnection, type Socket } from 'node:net';
import { rateLimiterService } from '../node/api/proto.js';
import { PEER_METHOD } from '../node/transport/grpc-peer-transport.js';
import * as grpc from '@grpc/grpc-js';
import { encodeFrame } from '../node/wire/codec.js';
import { FrameType, type WireEntry } from '../node/wire/frames.js';
import type { ScenarioContext } from './types.js';

const identity = (b: Buffer): Buffer => b;
/** Bound on the streams a flood reopens per node (each refusal ends one). */
const MAX_STREAMS_PER_NODE = 1_000;

/** A fixed-window state with nothing counted (times relative to the sender's now): taken, it would give a key its limit again. */
function freshStates(context: ScenarioContext): WireEntry[] {
  return Array.from({ length: context.keyCount }, (_, i) => ({ action: context.action, key: `${context.keyPrefix}${i}`, algorithm: 3, cells: [-1_000, 0, 0, 1_000] as [number, number, number, number] }));
}

/**
 * A process that is not a member floods every node's peer port for `durationMs` with
 * Handoff and Replicate frames that would reset every key of the load, under a member's
 * node id and under its own. Returns how many streams the nodes refused.
 */
export async function floodPeerPorts(addresses: string[], posingAs: string, context: ScenarioContext, durationMs: number): Promise<number> {
  const entries = freshStates(context);
  const frames = [encodeFrame({ type: FrameType.Handoff, id: 1, entries }), encodeFrame({ type: FrameType.Replicate, id: 2, entries })];
  const endAt = Date.now() + durationMs;
  let refused = 0;
  await Promise.all(
    addresses.map(async (address, n) => {
      const client = new grpc.Client(address, grpc.credentials.createInsecure());
      try {
        for (let opened = 0; opened < MAX_STREAMS_PER_NODE && Date.now() < endAt; opened++) {
          const metadata = new grpc.Metadata();
          metadata.set('ringlimit-node-id', opened % 2 === 0 ? posingAs : `intruder-${n}`);
          const stream = client.makeBidiStreamRequest(PEER_METHOD, identity, identity, metadata);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              stream.cancel();
              resolve();
            }, 200);
            stream.on('data', () => undefined);
            stream.on('error', (error: grpc.ServiceError) => {
              if (error.code === grpc.status.UNAUTHENTICATED) refused++;
              clearTimeout(timer);
              resolve();
            });
            for (const frame of frames) stream.write(Buffer.from(frame));
          });
        }
      } finally {
        client.close();
      }
    }),
  );
  return refused;
}

/**
 * Callers that never read their answers: `connections` HTTP/2 connections to `address`,
 * each opening `calls` AllowBatch calls of `items` requests and never reading a byte back,
 * held open for `holdMs`. Returns how many calls the node answered with headers.
 */
export async function slowReaders(address: string, connections: number, calls: number, items: number, holdMs: number): Promise<number> {
  const batch = rateLimiterService()['AllowBatch']!;
  const message = batch.requestSerialize({ requests: Array.from({ length: items }, (_, i) => ({ key: `slow-${i}`, action: 'slow-reader', limit: 1_000_000, windowMs: 60_000 })) });
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  let answered = 0;
  const sessions = Array.from({ length: connections }, () => {
    const session = connect(`http://${address}`);
    session.on('error', () => undefined);
    for (let c = 0; c < calls; c++) {
      const stream = session.request({ ':method': 'POST', ':path': batch.path, 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => undefined);
      stream.on('response', () => void answered++);
      stream.pause(); // never read
      stream.end(framed);
    }
    return session;
  });
  await new Promise((resolve) => setTimeout(resolve, holdMs));
  for (const session of sessions) session.destroy();
  return answered;
}

/** A process that keeps one core busy until stopped: a machine shared with other work. */
export function cpuHog(): { stop(): void } {
  const child: ChildProcess = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  return { stop: () => void child.kill('SIGKILL') };
}

/** The loopback addresses 127.0.0.`from` … 127.0.0.`from + count - 1`: other hosts, to a node on 127.0.0.1. */
export const loopbackHosts = (from: number, count: number): string[] => Array.from({ length: count }, (_, i) => `127.0.0.${from + i}`);

const hostPort = (address: string): { host: string; port: number } => ({ host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)) });

/**
 * Keeps `perHost` connections from each of `hosts` to `address` open until `endAt`, each made
 * by `open` (reopened a second after the node closes it, as a persistent attacker would);
 * returns how many the node closed.
 */
async function holdConnections(hosts: string[], perHost: number, endAt: number, open: (host: string) => { closed: Promise<void>; close(): void }): Promise<number> {
  let closedByNode = 0;
  await Promise.all(
    hosts.flatMap((host) =>
      Array.from({ length: perHost }, async () => {
        while (Date.now() < endAt) {
          const connection = open(host);
          const ended = await Promise.race([connection.closed.then(() => true), sleepUntil(endAt).then(() => false)]);
          if (!ended) {
            connection.close();
            return;
          }
          closedByNode++;
          await new Promise((r) => setTimeout(r, REOPEN_AFTER_MS));
        }
      }),
    ),
  );
  return closedByNode;
}

/** How long a holder waits to reopen a connection the node closed. */
const REOPEN_AFTER_MS = 1_000;

const sleepUntil = (endAt: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, endAt - Date.now())));

/**
 * Issue 28, finding 1: from each of `hosts`, `connections` HTTP/2 connections that each open
 * 100 unary Allow calls with headers and no token, and never send their requests, until
 * `durationMs` is over. Returns how many connections the node closed.
 */
export function silentCalls(address: string, hosts: string[], connections: number, durationMs: number): Promise<number> {
  const { host: target, port } = hostPort(address);
  const path = rateLimiterService()['Allow']!.path;
  return holdConnections(hosts, connections, Date.now() + durationMs, (localAddress) => {
    const session = connect(`http://${address}`, { createConnection: () => createConnection({ host: target, port, localAddress }) });
    session.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => session.once('close', resolve));
    for (let c = 0; c < 100; c++) {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
      stream.on('error', () => undefined);
    }
    return { closed, close: () => session.destroy() };
  });
}

/**
 * Issue 28, finding 2: from each of `hosts`, `perHost` TCP connections to `address` that send
 * `send` (nothing, or the start of a request that never ends: slowloris) and then nothing,
 * until `durationMs` is over. Returns how many the node closed.
 */
export function idleConnections(address: string, hosts: string[], perHost: number, durationMs: number, send = ''): Promise<number> {
  const { host, port } = hostPort(address);
  return holdConnections(hosts, perHost, Date.now() + durationMs, (localAddress) => {
    const socket = createConnection({ host, port, localAddress });
    socket.on('error', () => undefined);
    if (send !== '') socket.once('connect', () => socket.write(send));
    return { closed: new Promise<void>((resolve) => socket.once('close', () => resolve())), close: () => socket.destroy() };
  });
}

/** What a flood of HTTP batches did: the answers it got by status (0: none — the connection failed or 10 s passed), and what it sent. */
export interface FloodRecord {
  statuses: Record<number, number>;
  /** Requests sent (each a full request: headers and body written). */
  requests: number;
  /** Bytes the flooders' sockets wrote (headers and bodies; a body the node refused unread was written all the same). */
  bytesSent: number;
  /** Connections the flooders opened. */
  connections: number;
}

/** How long a flooder waits for an answer before it counts the request as failed (status 0) and starts over on a new connection. */
const FLOOD_ANSWER_TIMEOUT_MS = 10_000;

/**
 * One HTTP/1.1 exchange on `socket`: writes `request` (headers and body, already encoded) and
 * reads the answer's status, headers and body. Resolves with the status (0 if the connection
 * failed or timed out first) and whether the connection may carry the next request.
 */
function exchange(socket: Socket, request: Buffer): Promise<{ status: number; reusable: boolean }> {
  return new Promise((resolve) => {
    let head = '';
    let status = 0;
    let bodyLeft = -1;
    let reusable = true;
    const done = (answered: boolean): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve({ status: answered ? status : 0, reusable: answered && reusable && !socket.destroyed });
    };
    const onData = (chunk: Buffer): void => {
      let rest = chunk;
      if (bodyLeft < 0) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        status = Number(head.slice(9, 12));
        const headers = head.slice(0, end).toLowerCase();
        bodyLeft = Number(/\r\ncontent-length: *(\d+)/.exec(headers)?.[1] ?? 0);
        reusable = !/\r\nconnection: *close/.test(headers);
        rest = Buffer.from(head.slice(end + 4), 'latin1');
      }
      bodyLeft -= rest.length;
      if (bodyLeft <= 0) done(true);
    };
    const onClose = (): void => done(bodyLeft >= 0 && bodyLeft <= 0);
    const timer = setTimeout(() => {
      socket.destroy();
      done(false);
    }, FLOOD_ANSWER_TIMEOUT_MS);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(request);
  });
}

/**
 * Issue 28, finding 3: `callers` token holders each posting batches of `items` requests to
 * /v1/allow-batch for `durationMs`, one after another — the next when the last is answered,
 * and no sooner than `intervalMs` after the last was sent; each keeps its connection while
 * the node keeps it (an answered batch), and opens a new one when the node closes it (a
 * refusal). Cheap for the attacking process: every request is one buffer encoded once,
 * written to a plain socket, and only the answer's head is parsed — so on a machine it
 * shares with the node it takes little CPU from the node or from a bystander.
 */
export async function httpBatchFlood(httpAddress: string, token: string, callers: number, items: number, durationMs: number, intervalMs = 0): Promise<FloodRecord> {
  const body = Buffer.from(JSON.stringify({ requests: Array.from({ length: items }, (_, i) => ({ key: `flood-${i}`, action: 'http-flood', limit: 1_000_000, windowMs: 60_000 })) }));
  const request = Buffer.concat([Buffer.from(`POST /v1/allow-batch HTTP/1.1\r\nHost: ${httpAddress}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1'), body]);
  const { host, port } = hostPort(httpAddress);
  const record: FloodRecord = { statuses: {}, requests: 0, bytesSent: 0, connections: 0 };
  const endAt = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: callers }, async (_, n) => {
      let socket: Socket | undefined;
      const retire = (s: Socket): void => {
        record.bytesSent += s.bytesWritten;
        s.destroy();
      };
      // Callers spread over the first interval, as callers that started apart would be.
      let nextAt = Date.now() + (intervalMs * n) / callers;
      while (Date.now() < endAt) {
        const waitMs = nextAt - Date.now();
        if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
        if (Date.now() >= endAt) break;
        nextAt = Date.now() + intervalMs;
        if (socket === undefined) {
          socket = createConnection({ host, port });
          socket.on('error', () => undefined);
          record.connections++;
        }
        record.requests++;
        const { status, reusable } = await exchange(socket, request);
        record.statuses[status] = (record.statuses[status] ?? 0) + 1;
        if (!reusable) {
          retire(socket);
          socket = undefined;
        }
      }
      if (socket !== undefined) retire(socket);
    }),
  );
  return record;
}

/** What a well-behaved caller saw: its calls' latencies (ms) and errors. */
export interface CallerRecord {
  latenciesMs: number[];
  errors: number;
}

/** A well-behaved caller: one unary Allow with `token` every `intervalMs` for `durationMs`, each with a 2 s deadline, over one channel. */
export async function wellBehavedCaller(address: string, token: string, durationMs: number, intervalMs = 10): Promise<CallerRecord> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const allow = rateLimiterService()['Allow']!;
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  const record: CallerRecord = { latenciesMs: [], errors: 0 };
  const endAt = Date.now() + durationMs;
  try {
    for (let i = 0; Date.now() < endAt; i++) {
      const started = performance.now();
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest(allow.path, allow.requestSerialize, allow.responseDeserialize, { key: `bystander-${i % 100}`, action: 'bystander', limit: 1_000_000, windowMs: 60_000 }, metadata, { deadline: Date.now() + 2_000 }, (e) => resolve(e)),
      );
      if (error === null) record.latenciesMs.push(performance.now() - started);
      else record.errors++;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  } finally {
    client.close();
  }
  return record;
}

/** The p99 of `latenciesMs`, to a tenth of a ms (0 when empty). */
export function p99(latenciesMs: number[]): number {
  if (latenciesMs.length === 0) return 0;
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]! * 10) / 10;
}

/**
 * wellBehavedCaller in a process of its own: the attackers' own work (in the harness process)
 * must not count as the node's latency.
 */
export function wellBehavedCallerProcess(address: string, token: string, durationMs: number): Promise<CallerRecord> {
  const script = `import { wellBehavedCaller } from ${JSON.stringify(import.meta.url)};\nconst record = await wellBehavedCaller(${JSON.stringify(address)}, ${JSON.stringify(token)}, ${durationMs});\nprocess.stdout.write(JSON.stringify(record));\n`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => void (out += chunk.toString()));
  return new Promise((resolve) =>
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out) as CallerRecord);
      } catch {
        resolve({ latenciesMs: [], errors: 1 });
      }
    }),
  );
}
