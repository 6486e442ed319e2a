import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_FILE = join('proto', 'ringlimit', 'v1', 'ratelimiter.proto');

/** The .proto ships at the package root; this file sits a few folders below it (src/, dist/ or a build of both). */
function findProto(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 6; up++) {
    const candidate = join(dir, PROTO_FILE);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', PROTO_FILE);
}

export const PROTO_PATH = findProto();

/** Wire shapes as proto-loader produces them (camelCase, int64 as number, unset optionals absent). */
export interface WireAllowRequest {
  key?: string;
  action?: string;
  limit?: number;
  windowMs?: number;
  weight?: number;
  cost?: number;
  algorithm?: string;
  burst?: number;
  maxWaitMs?: number;
  timestampMs?: number;
  global?: boolean;
  group?: string;
  calendar?: string;
  timeZone?: string;
}

export interface WireAllowResponse {
  allowed: boolean;
  limit: number;
  remaining: number;
  resetAtMs: number;
  retryAfterMs: number;
  waitMs: number;
}

export interface WireItemError {
  code: string;
  message: string;
  field: string;
}

export interface WireAllowBatchItem {
  decision?: WireAllowResponse;
  error?: WireItemError;
}

export interface WireStreamedRequest {
  id?: number;
  request?: WireAllowRequest;
}

export interface WireAllowStreamRequest {
  requests?: WireStreamedRequest[];
}

export interface WireStreamedResult {
  id: number;
  decision?: WireAllowResponse;
  error?: WireItemError;
}

export interface WireAllowStreamResponse {
  results: WireStreamedResult[];
  processed?: number;
}

export interface WireRingMember {
  nodeId: string;
  address: string;
}

export interface WireMembers {
  owners: WireRingMember[];
  placement: string;
}

export interface WirePoliciesInfo {
  version: number;
  digest: string;
  document: string;
}

export interface WireHealth {
  nodeId: string;
  status: string;
  owners: string[];
  members: number;
}

let cached: grpc.GrpcObject | undefined;

export function loadRateLimiterPackage(): grpc.GrpcObject {
  cached ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: true }),
  );
  return cached;
}

export function rateLimiterService(): grpc.ServiceDefinition {
  const v1 = (loadRateLimiterPackage()['ringlimit'] as grpc.GrpcObject)['v1'] as grpc.GrpcObject;
  return (v1['RateLimiter'] as grpc.ServiceClientConstructor).service;
}

const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));

/** AllowStream's method path; its messages travel as bytes, coded by stream-codec.ts. */
export function allowStreamPath(): string {
  return rateLimiterService()['AllowStream']!.path;
}

export const rawBytes = { serialize: asBuffer, deserialize: (bytes: Buffer): Buffer => bytes };

/**
 * The service as the node serves it: AllowStream's messages as bytes for stream-codec.ts,
 * and AllowBatch's too (a request is decoded by stream-codec.ts only once admitted, so a
 * large batch refused costs no decoding; its answer is written by stream-codec.ts, so its
 * size is known to the caller bounds); the other methods as generated.
 */
export function rateLimiterServiceWithRawStream(): grpc.ServiceDefinition {
  const service = rateLimiterService();
  const stream = service['AllowStream']!;
  const batch = service['AllowBatch']!;
  return {
    ...service,
    AllowStream: { ...stream, requestSerialize: rawBytes.serialize, requestDeserialize: rawBytes.deserialize, responseSerialize: rawBytes.serialize, responseDeserialize: rawBytes.deserialize },
    AllowBatch: { ...batch, requestDeserialize: rawBytes.deserialize, responseSerialize: rawBytes.serialize },
  };
}

export function rateLimiterClientConstructor(): grpc.ServiceClientConstructor {
  const v1 = (loadRateLimiterPackage()['ringlimit'] as grpc.GrpcObject)['v1'] as grpc.GrpcObject;
  return v1['RateLimiter'] as grpc.ServiceClientConstructor;
}
