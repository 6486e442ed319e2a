import { RateLimitError } from '../common/errors.js';
import { calendarOf, CALENDAR_UNITS, type Calendar, type CalendarUnit } from './calendar.js';
import { requestLimits } from './limits.js';
import { ALGORITHMS, type Algorithm, type ResolvedPolicy } from './types.js';

/**
 * A policy document's validation and compilation (policies.ts uses it): every mistake named
 * by its path; the compiled tables the Policies lookups read.
 */

/** One rule as written in a document: every field optional, merged field by field. */
export interface PolicyRuleInput {
  limit?: number;
  /** "1m", "30s", "500ms", "1h", "1d", milliseconds, or a calendar window `{ calendar: 'day', timeZone: 'Europe/Paris' }`. */
  window?: string | number | CalendarWindowInput;
  algorithm?: Algorithm;
  burst?: number;
  weight?: number;
}

/** A calendar window in a policy (see calendar.ts): timeZone defaults to "UTC". */
export interface CalendarWindowInput {
  calendar: CalendarUnit;
  timeZone?: string;
}

export interface PolicyDocument {
  /** Rules per action: an action name, a prefix ending in "*" (e.g. "api.*"), or "*". */
  defaults?: Record<string, PolicyRuleInput>;
  /** A capacity per action shared by all its users, by weight (weighted fair share): `{ limit, window }`. */
  shared?: Record<string, { limit: number; window: string | number }>;
  groups?: Record<string, { weight?: number; algorithm?: Algorithm; actions?: Record<string, PolicyRuleInput> }>;
  users?: Record<string, { group?: string; weight?: number; actions?: Record<string, PolicyRuleInput> }>;
}

/** A rule after parsing: windows in milliseconds, or a calendar (at most one of the two) — the fields a resolution sets. */
type Rule = ResolvedPolicy;

/** Rules of one level, by action. */
export interface ActionTable {
  wildcard: Rule | undefined;
  /** Prefix rules, longest first. */
  prefixes: [string, Rule][];
  exact: Map<string, Rule>;
}

export interface GroupLevel {
  base: Rule;
  table: ActionTable;
}

export interface UserLevel {
  group: string | undefined;
  base: Rule;
  table: ActionTable;
  /** group ('' for none: a user without a group of its own takes the request's) → action → resolved fields, for this user alone (made at its first request). */
  cache: Map<string, Map<string, ResolvedPolicy>> | undefined;
}


export const policyLimits = {
  /** Groups, users with their own rules, and rules per level a document may hold. */
  maxGroups: 10_000,
  maxUsers: 1_000_000,
  maxRulesPerLevel: 10_000,
  /** Resolutions remembered, per (group, action) and per (user, group, action); past it they are computed on every call. */
  maxCachedResolutions: 100_000,
  /** Combinations of (group or user, named action) checked when a document is compiled. */
  maxCheckedCombinations: 200_000,
} as const;

export const fail = (path: string, why: string): RateLimitError => new RateLimitError('INVALID_ARGUMENT', `${path}: ${why}`, path);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function parseWindow(path: string, value: unknown): number {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string' && DURATION.test(value)) {
    const [, amount, unit] = DURATION.exec(value)!;
    ms = Number(amount) * UNIT_MS[unit!]!;
  } else throw fail(path, `must be a duration such as "1m", "30s", "500ms", "1h", "1d", milliseconds, or a calendar window { calendar, timeZone }, got ${JSON.stringify(value)}`);
  if (!(ms >= requestLimits.minWindowMs && ms <= requestLimits.maxWindowMs)) {
    throw fail(path, `must be from ${requestLimits.minWindowMs} ms to ${requestLimits.maxWindowMs} ms (24 h), got ${ms} ms`);
  }
  return ms;
}

function parseCalendarWindow(path: string, value: Record<string, unknown>): Calendar {
  noOtherFields(path, value, ['calendar', 'timeZone']);
  const unit = value['calendar'];
  if (!CALENDAR_UNITS.includes(unit as CalendarUnit)) throw fail(`${path}.calendar`, `must be one of ${CALENDAR_UNITS.join(', ')}, got ${JSON.stringify(unit)}`);
  try {
    return calendarOf(unit as CalendarUnit, (value['timeZone'] ?? 'UTC') as string);
  } catch (error) {
    throw fail(`${path}.timeZone`, (error as Error).message.replace(/^timeZone: /, ''));
  }
}

function positiveInteger(path: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw fail(path, `must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

function weightOf(path: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0 && value <= requestLimits.maxWeight)) throw fail(path, `must be a number > 0 and <= ${requestLimits.maxWeight}, got ${JSON.stringify(value)}`);
  return value;
}

function algorithmOf(path: string, value: unknown): Algorithm {
  if (!ALGORITHMS.includes(value as Algorithm)) throw fail(path, `must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as Algorithm;
}

function noOtherFields(path: string, object: Record<string, unknown>, allowed: readonly string[]): void {
  for (const name of Object.keys(object)) {
    if (!allowed.includes(name)) throw fail(path === '' ? name : `${path}.${name}`, `unknown field; expected one of ${allowed.join(', ')}`);
  }
}

const emptyRule = (): Rule => ({ limit: undefined, windowMs: undefined, calendar: undefined, algorithm: undefined, burst: undefined, weight: undefined });

function parseRule(path: string, input: unknown): Rule {
  if (!isRecord(input)) throw fail(path, 'must be a mapping of limit, window, algorithm, burst, weight');
  noOtherFields(path, input, ['limit', 'window', 'algorithm', 'burst', 'weight']);
  const rule = emptyRule();
  if (input['limit'] !== undefined) rule.limit = positiveInteger(`${path}.limit`, input['limit']);
  const window = input['window'];
  if (isRecord(window)) rule.calendar = parseCalendarWindow(`${path}.window`, window);
  else if (window !== undefined) rule.windowMs = parseWindow(`${path}.window`, window);
  if (input['algorithm'] !== undefined) rule.algorithm = algorithmOf(`${path}.algorithm`, input['algorithm']);
  if (input['burst'] !== undefined) rule.burst = positiveInteger(`${path}.burst`, input['burst']);
  if (input['weight'] !== undefined) rule.weight = weightOf(`${path}.weight`, input['weight']);
  return rule;
}

function checkName(path: string, name: string, what: string, maxBytes: number): void {
  if (name.length === 0 || Buffer.byteLength(name, 'utf8') > maxBytes) throw fail(path, `${what} must be 1 to ${maxBytes} bytes`);
}

/** The table of a level without rules, shared (never changed): a million users without rules of their own cost no table each. */
const EMPTY_TABLE: ActionTable = { wildcard: undefined, prefixes: [], exact: new Map() };

function parseTable(path: string, input: unknown): ActionTable {
  if (input === undefined) return EMPTY_TABLE;
  const table: ActionTable = { wildcard: undefined, prefixes: [], exact: new Map() };
  if (!isRecord(input)) throw fail(path, 'must be a mapping of action (or "prefix*", or "*") to a rule');
  const entries = Object.entries(input);
  if (entries.length > policyLimits.maxRulesPerLevel) throw fail(path, `at most ${policyLimits.maxRulesPerLevel} rules`);
  for (const [action, ruleInput] of entries) {
    const rulePath = `${path}.${action}`;
    checkName(rulePath, action, 'an action', requestLimits.maxActionBytes);
    const rule = parseRule(rulePath, ruleInput);
    if (action === '*') table.wildcard = rule;
    else if (action.endsWith('*')) {
      const prefix = action.slice(0, -1);
      if (prefix.includes('*')) throw fail(rulePath, 'a wildcard may only end an action pattern');
      table.prefixes.push([prefix, rule]);
    } else if (action.includes('*')) throw fail(rulePath, 'a wildcard may only end an action pattern');
    else table.exact.set(action, rule);
  }
  table.prefixes.sort((a, b) => b[0].length - a[0].length);
  return table;
}

/** Copies the fields `rule` sets over `into`. */
export function overlay(into: ResolvedPolicy, rule: Rule | undefined): void {
  if (rule === undefined) return;
  if (rule.limit !== undefined) into.limit = rule.limit;
  // A rule's window replaces the whole window: a duration, or a calendar.
  if (rule.windowMs !== undefined) {
    into.windowMs = rule.windowMs;
    into.calendar = undefined;
  } else if (rule.calendar !== undefined) {
    into.calendar = rule.calendar;
    into.windowMs = undefined;
  }
  if (rule.algorithm !== undefined) into.algorithm = rule.algorithm;
  if (rule.burst !== undefined) into.burst = rule.burst;
  if (rule.weight !== undefined) into.weight = rule.weight;
}

/** The table's rules for `action`, least specific first: "*", then prefixes (shortest first), then the exact one. */
export function overlayTable(into: ResolvedPolicy, table: ActionTable, action: string): void {
  overlay(into, table.wildcard);
  for (let i = table.prefixes.length - 1; i >= 0; i--) {
    const [prefix, rule] = table.prefixes[i]!;
    if (action.startsWith(prefix)) overlay(into, rule);
  }
  overlay(into, table.exact.get(action));
}

/** Bounds a caller may set on what a document holds (the node passes its options). */
export interface PolicyCompileOptions {
  /** Users a document may list (default policyLimits.maxUsers); past it RESOURCE_EXHAUSTED naming `maxUsersOption`. */
  maxUsers?: number;
  /** The option to name in that error (default "maxUsers"). */
  maxUsersOption?: string;
  /** Skip the combination check (the document was checked whole already, e.g. in a worker). */
  combinationsChecked?: boolean;
}

/** A document's compiled parts, before they become a Policies. */
export interface CompiledParts {
  document: PolicyDocument;
  defaults: ActionTable;
  groups: Map<string, GroupLevel>;
  users: Map<string, UserLevel>;
  sharedPerMs: Map<string, number>;
  /** Levels of users without rules of their own, by group and weight (see compileUser). */
  alike: Map<string, UserLevel>;
}

export function compileHead(document: unknown): CompiledParts {
  if (!isRecord(document)) throw fail('(document)', 'must be a mapping with defaults, groups and users');
  noOtherFields('', document, ['defaults', 'groups', 'users', 'shared']);
  const parts: CompiledParts = { document: document as PolicyDocument, defaults: parseTable('defaults', document['defaults']), groups: new Map(), users: new Map(), sharedPerMs: new Map(), alike: new Map() };
  const shared = document['shared'];
  if (shared !== undefined) {
    if (!isRecord(shared)) throw fail('shared', 'must be a mapping of action to { limit, window }');
    for (const [action, input] of Object.entries(shared)) {
      const path = `shared.${action}`;
      checkName(path, action, 'an action', requestLimits.maxActionBytes);
      if (action.includes('*')) throw fail(path, 'a shared capacity names one action (no wildcard)');
      if (!isRecord(input)) throw fail(path, 'must be a mapping of limit and window');
      noOtherFields(path, input, ['limit', 'window']);
      if (input['limit'] === undefined || input['window'] === undefined) throw fail(path, 'needs both limit and window');
      const limit = positiveInteger(`${path}.limit`, input['limit']);
      if (isRecord(input['window'])) throw fail(`${path}.window`, 'a shared capacity is a rate: give a duration such as "1h", not a calendar window');
      parts.sharedPerMs.set(action, limit / parseWindow(`${path}.window`, input['window']));
    }
  }
  const groups = document['groups'];
  if (groups !== undefined) {
    if (!isRecord(groups)) throw fail('groups', 'must be a mapping of group name to its rules');
    const entries = Object.entries(groups);
    if (entries.length > policyLimits.maxGroups) throw fail('groups', `at most ${policyLimits.maxGroups} groups`);
    for (const [name, input] of entries) {
      const path = `groups.${name}`;
      checkName(path, name, 'a group name', 256);
      if (!isRecord(input)) throw fail(path, 'must be a mapping of weight, algorithm and actions');
      noOtherFields(path, input, ['weight', 'algorithm', 'actions']);
      const base = emptyRule();
      if (input['weight'] !== undefined) base.weight = weightOf(`${path}.weight`, input['weight']);
      if (input['algorithm'] !== undefined) base.algorithm = algorithmOf(`${path}.algorithm`, input['algorithm']);
      parts.groups.set(name, { base, table: parseTable(`${path}.actions`, input['actions']) });
    }
  }
  const users = document['users'];
  if (users !== undefined && !isRecord(users)) throw fail('users', 'must be a mapping of user key to its group and rules');
  return parts;
}

const NO_RULE: Rule = Object.freeze(emptyRule());

/**
 * A user's level. Users alike — the same group and weight, no rules of their own — share one
 * level (and its remembered resolutions, which are the same for them): a million such users
 * cost a map entry each, not objects the garbage collector copies.
 */
export function compileUser(parts: CompiledParts, key: string, input: unknown): UserLevel {
  if (isRecord(input) && input['actions'] === undefined) {
    const group = input['group'];
    const weight = input['weight'];
    const alike = typeof group === 'string' && (weight === undefined || typeof weight === 'number') ? `${group}\u0000${String(weight)}` : undefined;
    if (alike !== undefined && Object.keys(input).length <= (weight === undefined ? 1 : 2)) {
      const shared = parts.alike.get(alike);
      if (shared !== undefined) {
        checkName(`users.${key}`, key, 'a user key', requestLimits.maxKeyBytes);
        return shared;
      }
      const level = compileUserLevel(parts, key, input);
      parts.alike.set(alike, level);
      return level;
    }
  }
  return compileUserLevel(parts, key, input);
}

function compileUserLevel(parts: CompiledParts, key: string, input: unknown): UserLevel {
  const path = `users.${key}`;
  checkName(path, key, 'a user key', requestLimits.maxKeyBytes);
  if (!isRecord(input)) throw fail(path, 'must be a mapping of group, weight and actions');
  noOtherFields(path, input, ['group', 'weight', 'actions']);
  const group = input['group'];
  if (group !== undefined && (typeof group !== 'string' || !parts.groups.has(group))) {
    throw fail(`${path}.group`, `must name a group of this document (${[...parts.groups.keys()].join(', ') || 'none defined'}), got ${JSON.stringify(group)}`);
  }
  // A user without a weight of its own shares one empty base rule (only read).
  const base = input['weight'] === undefined ? NO_RULE : { ...NO_RULE, weight: weightOf(`${path}.weight`, input['weight']) };
  return { group, base, table: parseTable(`${path}.actions`, input['actions']), cache: undefined };
}

export function tooManyUsers(options: PolicyCompileOptions): RateLimitError {
  const max = options.maxUsers ?? policyLimits.maxUsers;
  const option = options.maxUsersOption ?? 'maxUsers';
  return new RateLimitError('RESOURCE_EXHAUSTED', `users: a document may list at most ${max} users (${option})`, option);
}
