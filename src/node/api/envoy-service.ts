import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { RingLimitError } from '../../common/errors.js';
import { fnv1a32 } from '../../common/fnv.js';
import { unitOfWire } from '../../envoy/descriptors.js';
import { answerEnvoyRequest, planEnvoyRequest, type EnvoyCheck, type EnvoyCount, type EnvoyRequest, type EnvoyResponse } from '../../envoy/answer.js';
import type { EnvoyUnit, JsonValue } from '../../envoy/types.js';
import { calendarOf, type CalendarUnit } from '../../limiter/calendar.js';
import { requestLimits } from '../../limiter/limits.js';
import type { Reservation } from '../../limiter/types.js';
import { toServiceError, type PublicApiBackend } from './backend.js';
import { PROTO_PATH } from './proto.js';
import { envoyRequestRefusal } from './envoy-scan.js';
import type { BatchBudget } from './batch-budget.js';

import type { ApiTokens } from '../transport/credentials.js';

/** Envoy's proto files (vendored, proto/envoy) sit beside ours under proto/. */
const PROTO_ROOT = dirname(dirname(dirname(PROTO_PATH)));
const RLS_FILE = join('envoy', 'service', 'ratelimit', 'v3', 'rls.proto');

const FIXED_UNIT_MS: Partial<Record<EnvoyUnit, number>> = { second: 1_000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/**
 * The window of a unit. second to day: fixed windows aligned to the epoch, as
 * envoyproxy/ratelimit counts them (a day is the UTC day). week, month and year: the UTC
 * calendar's (weeks from Monday, months and years as the calendar has them), where that
 * service uses fixed spans of 7, 30 and 365 days from the epoch.
 */
export function envoyWindow(unit: EnvoyUnit): { windowMs: number } | { calendar: CalendarUnit; timeZone: 'UTC' } {
  const windowMs = FIXED_UNIT_MS[unit];
  return windowMs !== undefined ? { windowMs } : { calendar: unit as CalendarUnit, timeZone: 'UTC' };
}

/** Whole seconds from `nowMs` to the end of its window, as the peer counts them: the window's end less the clock's whole seconds. */
export function secondsUntilReset(unit: EnvoyUnit, nowMs: number): number {
  const window = envoyWindow(unit);
  const nowSeconds = Math.floor(nowMs / 1000);
  if ('windowMs' in window) {
    const span = window.windowMs / 1000;
    return span - (nowSeconds % span);
  }
  const calendar = calendarOf(window.calendar, window.timeZone);
  return calendar.after(calendar.start(nowMs), 1) / 1000 - nowSeconds;
}

/**
 * The counters count every hit, over the limit or not (the peer's INCRBY): a fixed window
 * whose limit no count reaches, from whose remaining the count is read back.
 */
const COUNTER_LIMIT = Number.MAX_SAFE_INTEGER;
/** More hits than this in one descriptor count as this many (Envoy's hits_addend is a uint64; counts stay exact doubles). */
const MAX_HITS = 2 ** 40;

interface WireEntry {
  key?: string;
  value?: string;
}
interface WireDescriptor {
  entries?: WireEntry[];
  limit?: { requestsPerUnit?: number; unit?: string };
  hitsAddend?: { value?: number } | null;
}
interface WireRequest {
  domain?: string;
  descriptors?: WireDescriptor[];
  hitsAddend?: number;
}
/** google.protobuf.Value as proto-loader reads and writes it. */
type WireValue = { nullValue: 'NULL_VALUE' } | { numberValue: number } | { stringValue: string } | { boolValue: boolean } | { structValue: WireStruct } | { listValue: { values: WireValue[] } };
interface WireStruct {
  fields: Record<string, WireValue>;
}
type WireResponse = Omit<EnvoyResponse, 'dynamicMetadata'> & { dynamicMetadata?: WireStruct };
/** A request refused before it was decoded (see envoyRequestRefusal). */
interface RefusedRequest {
  refused: RingLimitError;
}

let service: grpc.ServiceDefinition | undefined;
let servedService: grpc.ServiceDefinition | undefined;

/** The service as the node serves it: a request past the descriptor or entry caps is refused while scanning, never decoded. */
function servedRateLimitService(): grpc.ServiceDefinition {
  if (servedService !== undefined) return servedService;
  const definition = rateLimitService();
  const method = definition['ShouldRateLimit']!;
  const deserialize = method.requestDeserialize;
  servedService = { ...definition, ShouldRateLimit: { ...method, requestDeserialize: (bytes: Buffer): unknown => { const refused = envoyRequestRefusal(bytes); return refused === undefined ? deserialize(bytes) : { refused }; } } };
  return servedService;
}

function rateLimitService(): grpc.ServiceDefinition {
  if (service !== undefined) return service;
  const definition = protoLoader.loadSync(RLS_FILE, { includeDirs: [PROTO_ROOT], keepCase: false, longs: Number, enums: String, defaults: false, oneofs: true });
  const loaded = grpc.loadPackageDefinition(definition);
  const v3 = ((((loaded['envoy'] as grpc.GrpcObject)['service'] as grpc.GrpcObject)['ratelimit'] as grpc.GrpcObject)['v3'] as grpc.GrpcObject)['RateLimitService'] as grpc.ServiceClientConstructor;
  service = v3.service;
  return service;
}

/** A client constructor for tests and tools: Envoy's RateLimitService. */
export function envoyRateLimitClient(): grpc.ServiceClientConstructor {
  return grpc.makeClientConstructor(rateLimitService(), 'RateLimitService');
}

/** The request as the pure planner takes it: absent fields are Envoy's defaults. */
function requestOf(w: WireRequest): EnvoyRequest {
  return {
    domain: w.domain ?? '',
    descriptors: (w.descriptors ?? []).map((d) => ({
      entries: (d.entries ?? []).map((e) => ({ key: e.key ?? '', value: e.value ?? '' })),
      limit: d.limit === undefined || d.limit === null ? undefined : { requestsPerUnit: d.limit.requestsPerUnit ?? 0, unit: unitOfWire(d.limit.unit ?? '') },
      // A wrapper that is set, even to 0 ("check without counting"), stands for this descriptor.
      hitsAddend: d.hitsAddend === undefined || d.hitsAddend === null ? undefined : Math.min(MAX_HITS, d.hitsAddend.value ?? 0),
    })),
    hitsAddend: Math.min(MAX_HITS, w.hitsAddend ?? 0),
  };
}

/** The action a counter counts under: its rule and unit, or a digest of them when longer than an action may be. */
function actionOf(check: EnvoyCheck): string {
  const action = `envoy/${check.action}`;
  if (Buffer.byteLength(action) <= requestLimits.maxActionBytes) return action;
  return `${action.slice(0, 200)}~${fnv1a32(action).toString(16)}`;
}

/** The key a counter counts under: the bucket, or (past the key bound) its start and its SHA-256. */
function keyOf(check: EnvoyCheck): string {
  const bucket = check.bucket;
  if (Buffer.byteLength(bucket) <= requestLimits.maxKeyBytes) return bucket;
  return `${bucket.slice(0, 300)}~${createHash('sha256').update(bucket).digest('base64url')}`;
}

/** Counts a descriptor's hits on its counter (at the counter's owner) and reads the count back. */
async function count(backend: PublicApiBackend, check: EnvoyCheck): Promise<EnvoyCount> {
  const d: Reservation = await backend.decide({ key: keyOf(check), action: actionOf(check), limit: COUNTER_LIMIT, ...envoyWindow(check.limit.unit), algorithm: 'fixed-window', cost: check.hits }, undefined);
  // d.limit is the counter's effective limit; a full counter (never, in practice) refuses and counts nothing.
  const counted = d.limit - d.remaining;
  const after = d.allowed ? counted : counted + check.hits;
  return { before: after - check.hits, after };
}

function wireValue(v: JsonValue): WireValue {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(wireValue) } };
  return { structValue: wireStruct(v) };
}

function wireStruct(o: { [key: string]: JsonValue }): WireStruct {
  const fields: Record<string, WireValue> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = wireValue(v);
  return { fields };
}

/**
 * Envoy's global rate limit service (envoy.service.ratelimit.v3.RateLimitService), on the
 * node's gRPC port: answered as envoyproxy/ratelimit answers (envoy-answer.ts), its counters
 * decided by the cluster like every request (docs/envoy.md). A request holds at most 64
 * descriptors (refused past it while scanning), so each is a single call to `largeBatches`
 * (the node's BatchBudget): while they come, large batches get their smaller share.
 */
export function addEnvoyRateLimitService(server: grpc.Server, backend: PublicApiBackend, tokens: ApiTokens, largeBatches?: Pick<BatchBudget, 'singleCall'>): void {
  server.addService(servedRateLimitService(), {
    shouldRateLimit: (call: grpc.ServerUnaryCall<WireRequest | RefusedRequest, WireResponse>, callback: grpc.sendUnaryData<WireResponse>) => {
      const envoy = backend.envoy();
      const fail = (error: unknown): void => {
        envoy.stats.serviceErrors++;
        callback(toServiceError(error));
      };
      if (!tokens.allows(call.metadata)) return fail(new RingLimitError('UNAUTHENTICATED', 'a bearer token this node accepts is required'));
      const request = call.request;
      if ('refused' in request) return fail(request.refused);
      largeBatches?.singleCall();
      const config = envoy.config;
      if (config === undefined) return fail(new RingLimitError('FAILED_PRECONDITION', 'no rate limit configuration loaded (serve --envoy-config FILE or DIRECTORY)'));
      let plan;
      try {
        plan = planEnvoyRequest(config, requestOf(request));
      } catch (error) {
        return fail(error);
      }
      if (!config.hasDomain(plan.request.domain)) envoy.stats.domainNotFound += plan.checks.length;
      Promise.all(plan.checks.map((check) => (check === undefined ? undefined : count(backend, check)))).then((counts) => {
        const response = answerEnvoyRequest(plan, counts, envoy.settings, envoy.stats, Date.now(), secondsUntilReset);
        const { dynamicMetadata, ...rest } = response;
        callback(null, dynamicMetadata === undefined ? rest : { ...rest, dynamicMetadata: wireStruct(dynamicMetadata) });
      }, fail);
    },
  });
}
