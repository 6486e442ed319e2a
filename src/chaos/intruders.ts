import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:http2';
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
