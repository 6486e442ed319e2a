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
  /** ownersDigest(owners): AllowStream answers carry the same number while the owners stay these. */
  ring: number;
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
const asBytes = { requestSerialize: asBuffer, requestDeserialize: (bytes: Buffer): Buffer => bytes, responseSerialize: asBuffer, responseDeserialize: (bytes: Buffer): Buffer => bytes };

/** The methods that carry a rate limit request: their messages are written and read by allow-codec.ts and stream-codec.ts. */
const CODED_METHODS = ['Allow', 'AllowBatch', 'AllowStream', 'Inspect', 'Reset', 'SetRemaining'] as const;

let coded: grpc.ServiceDefinition | undefined;

/**
 * The service as the node serves it and RingLimitClient calls it: the methods that carry a
 * rate limit request with their messages as bytes, for the codecs (on the node, a request
 * is decoded only once admitted: a large batch refused costs no decoding, and an answer's
 * size is known to the caller bounds); Members, Health and the policy methods as generated.
 */
export function rateLimiterServiceWithRawMessages(): grpc.ServiceDefinition {
  if (coded !== undefined) return coded;
  const service = rateLimiterService();
  coded = { ...service, ...Object.fromEntries(CODED_METHODS.map((name) => [name, { ...service[name]!, ...asBytes }])) };
  return coded;
}

/** Clients of the service as generated (proto-loader's objects), as other languages call it. */
export function rateLimiterClientConstructor(): grpc.ServiceClientConstructor {
  const v1 = (loadRateLimiterPackage()['ringlimit'] as grpc.GrpcObject)['v1'] as grpc.GrpcObject;
  return v1['RateLimiter'] as grpc.ServiceClientConstructor;
}

let codedClient: grpc.ServiceClientConstructor | undefined;

/** Clients of rateLimiterServiceWithRawMessages(): what RingLimitClient calls a node with. */
export function rawRateLimiterClientConstructor(): grpc.ServiceClientConstructor {
  codedClient ??= grpc.makeGenericClientConstructor(rateLimiterServiceWithRawMessages(), 'RateLimiter');
  return codedClient;
}
