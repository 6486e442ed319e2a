import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { RingLimitError } from '../../common/errors.js';
import { fnv1a32 } from '../../common/fnv.js';
import { bucketOf, type EnvoyDescriptors, type EnvoyMatch, type EnvoyUnit } from '../../limiter/envoy-descriptors.js';
import { calendarOf, type CalendarUnit } from '../../limiter/calendar.js';
import { requestLimits } from '../../limiter/limits.js';
import type { Reservation } from '../../limiter/types.js';
import { toServiceError, type PublicApiBackend } from './backend.js';
import { PROTO_PATH } from './proto.js';

import type { ApiTokens } from '../transport/credentials.js';

/** Envoy's proto files (vendored, proto/envoy) sit beside ours under proto/. */
const PROTO_ROOT = dirname(dirname(dirname(PROTO_PATH)));
const RLS_FILE = join('envoy', 'service', 'ratelimit', 'v3', 'rls.proto');

/** What a request may hold: Envoy sends a handful of descriptors of a few entries each. */
export const envoyRequestLimits = { maxDescriptors: 64, maxEntries: 16, maxDomainBytes: 1_024 } as const;

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

/** Milliseconds from `nowMs` to the end of its window of `unit`. */
function untilWindowEnd(unit: EnvoyUnit, nowMs: number): number {
  const window = envoyWindow(unit);
  if ('windowMs' in window) return window.windowMs - (nowMs % window.windowMs);
  const calendar = calendarOf(window.calendar, window.timeZone);
  return calendar.after(calendar.start(nowMs), 1) - nowMs;
}

interface WireEntry {
  key?: string;
  value?: string;
}
interface WireDescriptor {
  entries?: WireEntry[];
  limit?: { requestsPerUnit?: number; unit?: string };
  hitsAddend?: { value?: number };
}
interface WireRequest {
  domain?: string;
  descriptors?: WireDescriptor[];
  hitsAddend?: number;
}
interface WireStatus {
  code: 'OK' | 'OVER_LIMIT';
  currentLimit?: { name: string; requestsPerUnit: number; unit: string };
  limitRemaining: number;
  durationUntilReset?: { seconds: number; nanos: number };
}
interface WireResponse {
  overallCode: 'OK' | 'OVER_LIMIT';
  statuses: WireStatus[];
  responseHeadersToAdd: { key: string; value: string }[];
}

let service: grpc.ServiceDefinition | undefined;

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

const invalid = (message: string): RingLimitError => new RingLimitError('INVALID_ARGUMENT', message);

/** One descriptor's rule: from the configuration, or the limit override Envoy's route sends. */
interface Applied {
  match: EnvoyMatch;
  hits: number;
}

function entriesOf(d: WireDescriptor, i: number): { key: string; value: string }[] {
  const entries = d.entries ?? [];
  if (entries.length === 0 || entries.length > envoyRequestLimits.maxEntries) throw invalid(`descriptors[${i}].entries: 1 to ${envoyRequestLimits.maxEntries} entries`);
  return entries.map((e, j) => {
    if (typeof e.key !== 'string' || e.key === '') throw invalid(`descriptors[${i}].entries[${j}].key: must not be empty`);
    return { key: e.key, value: e.value ?? '' };
  });
}

const UNIT_OF_WIRE: Record<string, EnvoyUnit> = { SECOND: 'second', MINUTE: 'minute', HOUR: 'hour', DAY: 'day', WEEK: 'week', MONTH: 'month', YEAR: 'year' };

/** Reads and checks the request: what each descriptor asks, or throws INVALID_ARGUMENT. */
function applied(config: EnvoyDescriptors, request: WireRequest): (Applied | undefined)[] {
  const domain = request.domain ?? '';
  if (domain === '' || Buffer.byteLength(domain) > envoyRequestLimits.maxDomainBytes) throw invalid(`domain: 1 to ${envoyRequestLimits.maxDomainBytes} bytes`);
  const descriptors = request.descriptors ?? [];
  if (descriptors.length > envoyRequestLimits.maxDescriptors) throw invalid(`descriptors: at most ${envoyRequestLimits.maxDescriptors}`);
  const requestHits = request.hitsAddend !== undefined && request.hitsAddend > 0 ? request.hitsAddend : 1;
  return descriptors.map((d, i) => {
    const entries = entriesOf(d, i);
    const hits = d.hitsAddend?.value ?? requestHits;
    let match = config.match(domain, entries);
    if (d.limit !== undefined) {
      // Envoy's route may send the limit itself: it wins, counted per descriptor (as envoyproxy/ratelimit does), never in shadow mode.
      const unit = UNIT_OF_WIRE[d.limit.unit ?? ''];
      if (unit === undefined) throw invalid(`descriptors[${i}].limit.unit: SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR`);
      match = { limit: { requestsPerUnit: d.limit.requestsPerUnit ?? 0, unit, unlimited: false, name: undefined, replaces: [] }, shadowMode: false, rule: `${domain}/override/${unit}/${d.limit.requestsPerUnit ?? 0}`, bucket: bucketOf(domain, entries) };
    }
    return match === undefined ? undefined : { match, hits };
  });
}

/** The action a rule's buckets count under: its path, or a digest of it when longer than an action may be. */
function actionOf(rule: string): string {
  const action = `envoy/${rule}`;
  if (Buffer.byteLength(action) <= requestLimits.maxActionBytes) return action;
  return `${action.slice(0, 200)}~${fnv1a32(action).toString(16)}`;
}

async function statusOf(backend: PublicApiBackend, a: Applied | undefined, replaced: ReadonlySet<string>, nowMs: number): Promise<WireStatus> {
  if (a === undefined) return { code: 'OK', limitRemaining: 0 };
  const { limit, shadowMode, rule, bucket } = a.match;
  if (limit.name !== undefined && replaced.has(limit.name)) return { code: 'OK', limitRemaining: 0 };
  if (limit.unlimited) return { code: 'OK', limitRemaining: 0xffff_ffff };
  const unit = limit.unit!;
  const currentLimit = { name: limit.name ?? '', requestsPerUnit: limit.requestsPerUnit, unit: unit.toUpperCase() };
  if (limit.requestsPerUnit === 0) return { code: shadowMode ? 'OK' : 'OVER_LIMIT', currentLimit, limitRemaining: 0, durationUntilReset: duration(untilWindowEnd(unit, nowMs)) };
  let d: Reservation;
  try {
    d = await backend.decide({ key: bucket, action: actionOf(rule), limit: limit.requestsPerUnit, ...envoyWindow(unit), algorithm: 'fixed-window', cost: a.hits }, undefined);
  } catch (error) {
    // More hits than the limit ever holds: over the limit, as envoyproxy/ratelimit answers.
    if (error instanceof RingLimitError && error.field === 'cost') return { code: shadowMode ? 'OK' : 'OVER_LIMIT', currentLimit, limitRemaining: 0 };
    throw error;
  }
  return {
    code: d.allowed || shadowMode ? 'OK' : 'OVER_LIMIT',
    currentLimit,
    limitRemaining: Math.min(d.remaining, 0xffff_ffff),
    durationUntilReset: duration(Math.max(0, d.resetAtMs - nowMs)),
  };
}

function duration(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** The headers envoyproxy/ratelimit adds for the most restrictive limit (X-RateLimit-*), for Envoy to pass on. */
function headersFor(statuses: readonly WireStatus[]): { key: string; value: string }[] {
  let tightest: WireStatus | undefined;
  for (const s of statuses) if (s.currentLimit !== undefined && (tightest === undefined || s.limitRemaining < tightest.limitRemaining)) tightest = s;
  if (tightest === undefined || tightest.currentLimit === undefined) return [];
  return [
    { key: 'x-ratelimit-limit', value: String(tightest.currentLimit.requestsPerUnit) },
    { key: 'x-ratelimit-remaining', value: String(tightest.limitRemaining) },
    { key: 'x-ratelimit-reset', value: String(tightest.durationUntilReset?.seconds ?? 0) },
  ];
}

/**
 * Envoy's global rate limit service (envoy.service.ratelimit.v3.RateLimitService), on the
 * node's gRPC port: a `domain` and descriptors in, per-descriptor statuses, an overall code
 * and X-RateLimit-* headers out, decided by the cluster like every request (docs/envoy.md).
 */
export function addEnvoyRateLimitService(server: grpc.Server, backend: PublicApiBackend, tokens: ApiTokens): void {
  server.addService(rateLimitService(), {
    shouldRateLimit: (call: grpc.ServerUnaryCall<WireRequest, WireResponse>, callback: grpc.sendUnaryData<WireResponse>) => {
      if (!tokens.allows(call.metadata)) return callback(toServiceError(new RingLimitError('UNAUTHENTICATED', 'a bearer token this node accepts is required')));
      const config = backend.envoy();
      if (config === undefined) return callback(toServiceError(new RingLimitError('FAILED_PRECONDITION', 'no Envoy rate limit configuration on this node (serve --envoy-config FILE)')));
      let wanted: (Applied | undefined)[];
      try {
        wanted = applied(config, call.request);
      } catch (error) {
        return callback(toServiceError(error));
      }
      const replaced = new Set<string>();
      for (const a of wanted) if (a !== undefined) for (const name of a.match.limit.replaces) replaced.add(name);
      const nowMs = Date.now();
      Promise.all(wanted.map((a) => statusOf(backend, a, replaced, nowMs))).then(
        (statuses) => callback(null, { overallCode: statuses.some((s) => s.code === 'OVER_LIMIT') ? 'OVER_LIMIT' : 'OK', statuses, responseHeadersToAdd: headersFor(statuses) }),
        (error: unknown) => callback(toServiceError(error)),
      );
    },
  });
}
