import type { Clock } from '../common/clock.js';
import { RingLimitError, invalidArgument } from '../common/errors.js';
import { calendarOf, type Calendar, type CalendarUnit } from '../limiter/calendar.js';
import type { RemoteDecision, RemoteInspection, RemoteStore, RemoteStoreStats } from '../limiter/remote-store.js';
import { shapeMismatchError } from '../limiter/request-shape.js';
import type { AlgorithmId, ResolvedParams } from '../limiter/types.js';
import { newResolvedParams } from '../limiter/validate.js';
import { ADMIN_LUA, ADMIN_SHA, ARGS_PER_SET, DECIDE_LUA, DECIDE_SHA, REFUSED_SHAPE, REPLY_PER_DECISION, calendarShape } from './script.js';
import { CalendarArgs } from './calendar-args.js';
import { readNumberArray } from './reply.js';
import { keySlot } from './slot.js';

/**
 * The commands the store needs: ioredis's `Redis` and `Cluster` have them (a Cluster also
 * says `isCluster: true`, and then every script call names keys of one slot only).
 */
export interface RedisScriptClient {
  /** A command whose reply comes back as bytes (the script answers in MessagePack). */
  callBuffer(command: string, args: (string | number)[]): Promise<unknown>;
  readonly isCluster?: boolean;
}

export interface RedisStoreOptions {
  client: RedisScriptClient;
  /** Prepended to every Redis key; no braces (they would move the hash tag). */
  prefix: string;
  /** Decisions use Redis's clock (TIME) unless a clock is given: for tests and replays only. */
  clock: Clock | undefined;
  /** How long a key is kept in Redis past the time its state is back to fresh (as the in-memory store's option). */
  freshKeyGraceMs: number;
  /** Decisions in one script call at most. Smaller batches overlap: Redis runs one while this process reads the last (32 measured best at concurrency 64). */
  maxBatchSize: number;
  /** A script call not answered by then fails (DEADLINE_EXCEEDED) and its decisions go to the limiter's whenUnavailable. */
  timeoutMs: number;
  /** Decisions queued or in flight at most; past it a decision fails at once (RESOURCE_EXHAUSTED). */
  maxPendingDecisions: number;
}

export const redisStoreDefaults: Omit<RedisStoreOptions, 'client'> = {
  prefix: 'ringlimit:',
  clock: undefined,
  freshKeyGraceMs: 2_000,
  maxBatchSize: 32,
  timeoutMs: 200,
  maxPendingDecisions: 50_000,
};

/** With an injected clock, a fresh key is kept at least this long in Redis's time: its expiry cannot follow that clock. */
const INJECTED_CLOCK_GRACE_MS = 86_400_000;

interface Batch {
  keys: string[];
  /** The clock and the fresh-key grace (script.ts's ARGV header). */
  clock: string;
  graceMs: number;
  /** Parameter sets, ARGS_PER_SET numbers each, and each key's set (1-based). */
  sets: number[];
  which: number[];
  /** The calendars the sets name (1-based in a set), and the time their periods are sent around. */
  calendars: Calendar[];
  nowMs: number;
  resolves: ((d: RemoteDecision) => void)[];
  rejects: ((error: Error) => void)[];
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
}

function validate(o: RedisStoreOptions): void {
  const c = o.client as Partial<RedisScriptClient> | undefined;
  if (c === undefined || c === null || typeof c.callBuffer !== 'function') {
    throw invalidArgument('client', 'must be an ioredis Redis or Cluster client (new Redis(...))');
  }
  if (typeof o.prefix !== 'string' || /[{}]/.test(o.prefix) || o.prefix.length > 256) throw invalidArgument('prefix', 'must be a string of at most 256 characters without braces');
  if (o.clock !== undefined && typeof o.clock.now !== 'function') throw invalidArgument('clock', 'must have a now() method, or be left out to use Redis\'s clock');
  const int = (name: 'freshKeyGraceMs' | 'maxBatchSize' | 'timeoutMs' | 'maxPendingDecisions', min: number, max: number): void => {
    const v = o[name];
    if (!Number.isInteger(v) || v < min || v > max) throw invalidArgument(name, `must be an integer from ${min} to ${max}, got ${String(v)}`);
  };
  int('freshKeyGraceMs', 0, 86_400_000);
  int('maxBatchSize', 1, 4096);
  int('timeoutMs', 1, 60_000);
  int('maxPendingDecisions', 1, 10_000_000);
}

/** The 1-based number of p's parameter set in the batch, appended unless it is the last one there (a batch is mostly one policy). */
function setOf(batch: Batch, p: Readonly<ResolvedParams>, maxWaitMs: number): number {
  const sets = batch.sets;
  const n = sets.length;
  let calendar = 0;
  if (p.calendar !== null) {
    calendar = batch.calendars.indexOf(p.calendar) + 1;
    if (calendar === 0) calendar = batch.calendars.push(p.calendar);
  }
  if (n > 0 && sets[n - 7] === p.algorithm && sets[n - 6] === p.limit && sets[n - 5] === p.windowMs && sets[n - 4] === p.capacity && sets[n - 3] === p.cost && sets[n - 2] === maxWaitMs && sets[n - 1] === calendar) {
    return n / ARGS_PER_SET;
  }
  sets.push(p.algorithm, p.limit, p.windowMs, p.capacity, p.cost, maxWaitMs, calendar);
  return n / ARGS_PER_SET + 1;
}

/** A calendar's numbers for the script, after its name (the window of a shape). */
function calendarArgsOf(args: (string | number)[], calendars: CalendarArgs, calendar: Calendar, nowMs: number): void {
  args.push(calendarShape(calendar.unit, calendar.timeZone));
  for (const n of calendars.of(calendar, nowMs)) args.push(n);
}

/**
 * The refusal of a request that describes a key in use with another shape (the script's
 * REFUSED_SHAPE): FAILED_PRECONDITION naming the differing field, as the in-memory store's.
 * `held`: the held window as the script recorded it (script.ts calendarShape; '' not recorded).
 */
function refusal(algorithm: number, windowMs: number, calendar: Calendar | null, heldAlgorithm: number, heldFreshAtMs: number, held: string): RingLimitError {
  const p: ResolvedParams = { ...newResolvedParams(), algorithm: algorithm as AlgorithmId, windowMs, calendar };
  let heldWindowMs = 0;
  let heldCalendar: Calendar | null = null;
  const space = held.indexOf(' ');
  if (space > 0) {
    try {
      heldCalendar = calendarOf(held.slice(0, space) as CalendarUnit, held.slice(space + 1));
      heldWindowMs = heldCalendar.longestMs;
    } catch {
      // A zone this process does not know: the refusal stands, its message names no window.
    }
  } else if (held !== '') heldWindowMs = Number(held);
  return shapeMismatchError(heldAlgorithm as AlgorithmId, heldWindowMs, heldCalendar, heldFreshAtMs, p);
}

function failure(code: 'UNAVAILABLE' | 'DEADLINE_EXCEEDED' | 'RESOURCE_EXHAUSTED' | 'INTERNAL', why: string): RingLimitError {
  return new RingLimitError(code, `redis: ${why}`);
}

/**
 * The limiter's state in Redis or Valkey: every decision runs the in-memory core's
 * algorithm in one Lua script (script.ts), atomically per key. Decisions made in the same
 * event-loop turn go out together, up to maxBatchSize per script call (one round trip for
 * all of them; on a Cluster, one call per slot). Only this file and script.ts know Redis.
 * A key keeps its shape while its state is in use, as in memory (docs/request-shape.md): a
 * decision or an inspection of another shape rejects with FAILED_PRECONDITION naming the field,
 * and the script writes nothing for it.
 */
export class RedisStore implements RemoteStore {
  readonly name = 'redis';
  readonly options: Readonly<RedisStoreOptions>;
  private readonly client: RedisScriptClient;
  private readonly cluster: boolean;
  /** Batches filling in this turn: one, or one per slot on a Cluster. */
  private readonly filling = new Map<number, Batch>();
  private flushScheduled = false;
  private pending = 0;
  /** Script calls sent and not yet answered (or given up on). */
  private inFlight = 0;
  private closed = false;
  /** Scratch for reading replies. */
  private readonly values: number[] = [];
  /** shapeMismatches: decisions and inspections refused (FAILED_PRECONDITION) for describing a key in use with another shape. */
  readonly counters = { scriptCalls: 0, scriptLoads: 0, decisions: 0, failedCalls: 0, shapeMismatches: 0 };
  /** Scratch for the strings of a reply (refused decisions' held windows). */
  private readonly strings: string[] = [];
  private readonly calendarArgs = new CalendarArgs();

  constructor(options: Partial<RedisStoreOptions> & { client: RedisScriptClient }) {
    const merged: RedisStoreOptions = { ...redisStoreDefaults, ...options };
    validate(merged);
    this.options = merged;
    this.client = merged.client;
    this.cluster = merged.client.isCluster === true;
  }

  /** The Redis key holding (action, key): the user key is the hash tag, so one user's actions share a slot. */
  keyOf(action: string, key: string): string {
    return `${this.options.prefix}${action.length}:${action}:{${key}}`;
  }

  decide(p: Readonly<ResolvedParams>, maxWaitMs: number): Promise<RemoteDecision> {
    if (this.closed) return Promise.reject(failure('UNAVAILABLE', 'the store is closed'));
    if (this.pending >= this.options.maxPendingDecisions) {
      return Promise.reject(failure('RESOURCE_EXHAUSTED', `${this.pending} decisions already waiting for Redis (maxPendingDecisions)`));
    }
    const key = this.keyOf(p.action, p.key);
    const slot = this.cluster ? keySlot(key) : 0;
    let batch = this.filling.get(slot);
    if (batch === undefined) {
      const clock = this.options.clock;
      batch = {
        keys: [],
        clock: clock === undefined ? '' : String(clock.now()),
        graceMs: clock === undefined ? this.options.freshKeyGraceMs : Math.max(this.options.freshKeyGraceMs, INJECTED_CLOCK_GRACE_MS),
        sets: [],
        which: [],
        calendars: [],
        nowMs: clock === undefined ? Date.now() : clock.now(),
        resolves: [],
        rejects: [],
        settled: false,
        timer: undefined,
      };
      this.filling.set(slot, batch);
    }
    batch.keys.push(key);
    batch.which.push(setOf(batch, p, maxWaitMs));
    this.pending++;
    const promise = new Promise<RemoteDecision>((resolve, reject) => {
      batch.resolves.push(resolve);
      batch.rejects.push(reject);
    });
    // Idle: go at once (no added latency for a lone caller). Busy: gather this turn's decisions
    // into one call, sent after the turn's I/O (or at once when the batch is full).
    if (this.inFlight === 0 || batch.keys.length >= this.options.maxBatchSize) {
      this.filling.delete(slot);
      this.send(batch);
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    return promise;
  }

  admin(op: 'inspect' | 'set', p: Readonly<ResolvedParams>, remaining: number): Promise<RemoteInspection> {
    if (this.closed) return Promise.reject(failure('UNAVAILABLE', 'the store is closed'));
    const clock = this.options.clock;
    const nowMs = clock === undefined ? Date.now() : clock.now();
    const graceMs = clock === undefined ? this.options.freshKeyGraceMs : Math.max(this.options.freshKeyGraceMs, INJECTED_CLOCK_GRACE_MS);
    const args: (string | number)[] = [ADMIN_SHA, 1, this.keyOf(p.action, p.key), clock === undefined ? '' : String(nowMs), graceMs, op === 'inspect' ? 1 : 2, remaining];
    args.push(p.algorithm, p.limit, p.windowMs, p.capacity, 0, -1, p.calendar === null ? 0 : 1);
    if (p.calendar === null) args.push(0);
    else {
      args.push(1);
      calendarArgsOf(args, this.calendarArgs, p.calendar, nowMs);
    }
    const { algorithm, windowMs, calendar } = p;
    const answer = (reply: unknown): RemoteInspection => {
      const values: number[] = [];
      const strings: string[] = [];
      if (!(reply instanceof Uint8Array) || !readNumberArray(reply, values, strings)) throw failure('INTERNAL', 'the admin script returned something else than numbers');
      if (values.length === 5 && values[0] === REFUSED_SHAPE && strings.length === 1) {
        this.counters.shapeMismatches++;
        throw refusal(algorithm, windowMs, calendar, values[1]!, values[2]!, strings[0]!);
      }
      if (values.length !== 3 || strings.length !== 0) throw failure('INTERNAL', 'the admin script returned something else than three numbers');
      return { remaining: values[0]!, resetAtMs: values[1]!, nowMs: values[2]! };
    };
    this.counters.scriptCalls++;
    return this.withTimeout(
      this.client.callBuffer('EVALSHA', args).catch((error: unknown) => {
        if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
        this.counters.scriptLoads++;
        args[0] = ADMIN_LUA;
        return this.client.callBuffer('EVAL', args);
      }),
    ).then(answer, (error: unknown) => {
      throw error instanceof RingLimitError ? error : this.errorOf(error);
    });
  }

  /** `call`, or DEADLINE_EXCEEDED after timeoutMs. */
  private withTimeout<T>(call: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(failure('DEADLINE_EXCEEDED', `no answer within ${this.options.timeoutMs} ms (timeoutMs)`)), this.options.timeoutMs);
    });
    return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
  }

  stats(): RemoteStoreStats {
    return { calls: this.counters.scriptCalls, decisions: this.counters.decisions, failedCalls: this.counters.failedCalls };
  }

  /** Rejects decisions not yet sent; those in flight finish. Leaves the client open (it is the caller's). */
  async close(): Promise<void> {
    this.closed = true;
    for (const batch of this.filling.values()) this.settle(batch, failure('UNAVAILABLE', 'the store was closed'));
    this.filling.clear();
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const batch of this.filling.values()) this.send(batch);
    this.filling.clear();
  };

  private send(batch: Batch): void {
    if (batch.settled) return;
    this.counters.scriptCalls++;
    this.counters.decisions += batch.keys.length;
    this.inFlight++;
    batch.timer = setTimeout(() => this.settle(batch, failure('DEADLINE_EXCEEDED', `no answer within ${this.options.timeoutMs} ms (timeoutMs)`)), this.options.timeoutMs);
    const args: (string | number)[] = [DECIDE_SHA, batch.keys.length, ...batch.keys, batch.clock, batch.graceMs, batch.sets.length / ARGS_PER_SET, ...batch.sets, ...batch.which, batch.calendars.length];
    // Calendar periods around our clock (Redis's is near it: the periods sent reach two days either way).
    for (const calendar of batch.calendars) calendarArgsOf(args, this.calendarArgs, calendar, batch.nowMs);
    this.client.callBuffer('EVALSHA', args).then(
      (reply) => this.settle(batch, reply),
      (error: unknown) => {
        if (error instanceof Error && error.message.startsWith('NOSCRIPT')) {
          // A restarted or new server: EVAL loads the script (and later EVALSHAs find it).
          this.counters.scriptLoads++;
          args[0] = DECIDE_LUA;
          this.client.callBuffer('EVAL', args).then(
            (reply) => this.settle(batch, reply),
            (again: unknown) => this.settle(batch, this.errorOf(again)),
          );
        } else this.settle(batch, this.errorOf(error));
      },
    );
  }

  private errorOf(error: unknown): RingLimitError {
    this.counters.failedCalls++;
    return failure('UNAVAILABLE', error instanceof Error ? error.message : String(error));
  }

  /** The refusal of the batch's i-th decision: its request's shape is in its parameter set. */
  private refusalIn(batch: Batch, i: number, heldAlgorithm: number, heldFreshAtMs: number, held: string): RingLimitError {
    const base = (batch.which[i]! - 1) * ARGS_PER_SET;
    const calendar = batch.sets[base + 6]!;
    return refusal(batch.sets[base]!, batch.sets[base + 2]!, calendar === 0 ? null : batch.calendars[calendar - 1]!, heldAlgorithm, heldFreshAtMs, held);
  }

  /** Answers every decision of the batch once: from the reply, or with the error. */
  private settle(batch: Batch, outcome: unknown): void {
    if (batch.settled) return;
    batch.settled = true;
    if (batch.timer !== undefined) {
      clearTimeout(batch.timer);
      this.inFlight--;
    }
    const n = batch.keys.length;
    this.pending -= n;
    const values = this.values;
    const strings = this.strings;
    const readable = outcome instanceof Uint8Array && readNumberArray(outcome, values, strings) && values.length === n * REPLY_PER_DECISION + 1;
    if (!readable) {
      const error = outcome instanceof Error ? outcome : failure('INTERNAL', 'the script answered in an unexpected shape');
      for (const reject of batch.rejects) reject(error);
      return;
    }
    const nowMs = values[n * REPLY_PER_DECISION]!;
    for (let i = 0; i < n; i++) {
      const at = i * REPLY_PER_DECISION;
      if (values[at] === REFUSED_SHAPE) {
        this.counters.shapeMismatches++;
        batch.rejects[i]!(this.refusalIn(batch, i, values[at + 1]!, values[at + 2]!, strings[values[at + 4]!] ?? ''));
        continue;
      }
      batch.resolves[i]!({ allowed: values[at] === 1, remaining: values[at + 1]!, resetAtMs: values[at + 2]!, retryAfterMs: values[at + 3]!, waitMs: values[at + 4]!, nowMs });
    }
  }
}

/** The store for createLimiter({ store: redisStore({ client }) }). */
export function redisStore(options: Partial<RedisStoreOptions> & { client: RedisScriptClient }): RedisStore {
  return new RedisStore(options);
}
