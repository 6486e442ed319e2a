/**
 * The transport floor's server, run as its own process (`node floor-server.js tcp|grpc`):
 * a Map counter behind raw TCP or behind one grpc-js bidi stream method. Sends its port
 * to the parent over IPC and runs until killed.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:net';
import { answerCalls, FrameSplitter } from './floor-wire.js';

export const FLOOR_METHOD = '/ringlimit.bench.Floor/Exchange';
const identity = (bytes: Buffer): Buffer => bytes;
export const floorService: grpc.ServiceDefinition = {
  exchange: {
    path: FLOOR_METHOD,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

function serveTcp(): Promise<number> {
  const counts = new Map<string, number>();
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    const splitter = new FrameSplitter((buffer, start) => socket.write(answerCalls(buffer, start, counts, true)));
    socket.on('data', (chunk: Buffer) => splitter.push(chunk));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    }),
  );
}

function serveGrpc(): Promise<number> {
  const counts = new Map<string, number>();
  const server = new grpc.Server();
  server.addService(floorService, {
    exchange: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (frame: Buffer) => call.write(answerCalls(frame, 0, counts, false)));
      call.on('error', () => undefined);
    },
  });
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error === null ? resolve(port) : reject(error))),
  );
}

const kind = process.argv[2];
const port = await (kind === 'grpc' ? serveGrpc() : serveTcp());
process.send?.(port);
