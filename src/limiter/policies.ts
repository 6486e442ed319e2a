import { RateLimitError } from '../common/errors.js';
import { calendarOf, CALENDAR_UNITS, type Calendar, type CalendarUnit } from './calendar.js';
import { requestLimits } from './limits.js';
import { ALGORITHMS, type Algorithm, type RateLimitRequest, type ResolvedPolicy } from './types.js';

export type { ResolvedPolicy } from './types.js';
import { newResolvedParams, resolveRequest } from './validate.js';

/**
 * Policies: limits declared once — per action, per group (tier) and per user — so that
 * requests may carry only who and what. A pure module: a policy document (plain data, as
 * parsed from YAML or JSON) is validated with the path of every mistake, then compiled
 * into lookups that fill a request's missing fields on the hot path.
 *
 * Resolution, field by field, most specific last (it wins):
 *   defaults["*"] < defaults[longest prefix "x*"] < defaults[action]
 *   < group.{weight,algorithm} < group.actions[...same order]
 *   < user.{weight} < user.actions[...same order]
 * A user's group is the document's (users.<key>.group), else the request's `group`.
 * Fields the request gives itself win over the policies only where the policies leave
 * them unset: an operator's policy is not overridden by a caller (docs/policies.md).
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

/** A rule after parsing: windows in milliseconds, or a calendar (at most one of the two). */
interface Rule {
  limit: number | undefined;
  windowMs: number | undefined;
  calendar: Calendar | undefined;
  algorithm: Algorithm | undefined;
  burst: number | undefined;
  weight: number | undefined;
}

/** Rules of one level, by action. */
interface ActionTable {
  wildcard: Rule | undefined;
  /** Prefix rules, longest first. */
  prefixes: [string, Rule][];
  exact: Map<string, Rule>;
}

interface GroupLevel {
  base: Rule;
  table: ActionTable;
}

interface UserLevel {
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

const fail = (path: string, why: string): RateLimitError => new RateLimitError('INVALID_ARGUMENT', `${path}: ${why}`, path);

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
function overlay(into: ResolvedPolicy, rule: Rule | undefined): void {
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
function overlayTable(into: ResolvedPolicy, table: ActionTable, action: string): void {
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
interface CompiledParts {
  document: PolicyDocument;
  defaults: ActionTable;
  groups: Map<string, GroupLevel>;
  users: Map<string, UserLevel>;
  sharedPerMs: Map<string, number>;
  /** Levels of users without rules of their own, by group and weight (see compileUser). */
  alike: Map<string, UserLevel>;
}

function compileHead(document: unknown): CompiledParts {
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
function compileUser(parts: CompiledParts, key: string, input: unknown): UserLevel {
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

function tooManyUsers(options: PolicyCompileOptions): RateLimitError {
  const max = options.maxUsers ?? policyLimits.maxUsers;
  const option = options.maxUsersOption ?? 'maxUsers';
  return new RateLimitError('RESOURCE_EXHAUSTED', `users: a document may list at most ${max} users (${option})`, option);
}

/**
 * Compiles a document in parts, for a loader that must not hold the event loop for a whole
 * large document: the head (defaults, shared, groups; users as `{}`), then users in slices,
 * then finish(). Validates as `new Policies(document)` does, user by user.
 */
export class PoliciesBuilder {
  private readonly parts: CompiledParts;
  private readonly usersDocument: Record<string, unknown> = {};
  private finished = false;

  constructor(
    head: unknown,
    private readonly options: PolicyCompileOptions = {},
  ) {
    this.parts = compileHead(head);
  }

  /** Users added so far. */
  get users(): number {
    return this.parts.users.size;
  }

  /**
   * Compiles these users. With `keepDocument` false the users' plain data is not kept (the
   * caller gives finish() the whole document another way): a large document is then not held
   * twice.
   */
  addUsers(entries: Iterable<readonly [string, unknown]>, keepDocument = true): void {
    const max = this.options.maxUsers ?? policyLimits.maxUsers;
    const { users } = this.parts;
    for (const [key, input] of entries) {
      if (users.has(key)) throw fail(`users.${key}`, 'listed twice');
      if (users.size >= max) throw tooManyUsers(this.options);
      users.set(key, compileUser(this.parts, key, input));
      // Defined, not assigned: a user named "__proto__" stays a user.
      if (keepDocument) Object.defineProperty(this.usersDocument, key, { value: input, enumerable: true, writable: true, configurable: true });
    }
  }

  /** The compiled policies; `document` gives their plain data when it is asked for (when the users were added without keepDocument). */
  finish(document?: () => PolicyDocument): Policies {
    if (this.finished) throw new Error('PoliciesBuilder.finish() called twice');
    this.finished = true;
    if (document === undefined) {
      const head = this.parts.document as Record<string, unknown>;
      if (this.parts.users.size > 0 || head['users'] !== undefined) head['users'] = this.usersDocument;
    }
    return new Policies(new CompiledDocument(this.parts, this.options, document));
  }
}

/** A document compiled by PoliciesBuilder: what the Policies constructor takes instead of plain data. */
class CompiledDocument {
  constructor(
    readonly parts: CompiledParts,
    readonly options: PolicyCompileOptions,
    readonly document: (() => PolicyDocument) | undefined,
  ) {}
}

/** A validated, compiled policy document. */
export class Policies {
  private readonly defaults: ActionTable;
  private readonly groups: Map<string, GroupLevel>;
  private readonly users: Map<string, UserLevel>;
  /** group → action → what the policies say; without a group, noGroup. */
  private readonly cache = new Map<string, Map<string, ResolvedPolicy>>();
  private readonly noGroup = new Map<string, ResolvedPolicy>();
  /** The last action resolved without a group or listed user, and its answer. */
  private lastAction = '';
  private lastResolved: ResolvedPolicy = { limit: undefined, windowMs: undefined, calendar: undefined, algorithm: undefined, burst: undefined, weight: undefined };
  private cached = 0;

  private plain: PolicyDocument | undefined;
  private readonly plainOf: (() => PolicyDocument) | undefined;

  /** The document as given (plain data), for whoever passes it on. */
  get document(): PolicyDocument {
    return (this.plain ??= this.plainOf!());
  }
  /** When this document was written (its file's modification time, ms), for ordering versions across a cluster; 0 when unknown. */
  version = 0;
  /** Shared capacities: action → units per ms. */
  private readonly sharedPerMs: Map<string, number>;

  /** Validates `document` (throws INVALID_ARGUMENT naming the path of the first mistake) and compiles it. */
  constructor(document: unknown, options: PolicyCompileOptions = {}) {
    let parts: CompiledParts;
    if (document instanceof CompiledDocument) {
      parts = document.parts;
      options = document.options;
      this.plainOf = document.document;
    } else {
      parts = compileHead(document);
      const users = (document as Record<string, unknown>)['users'];
      if (users !== undefined) {
        const entries = Object.entries(users as Record<string, unknown>);
        if (entries.length > (options.maxUsers ?? policyLimits.maxUsers)) throw tooManyUsers(options);
        for (const [key, input] of entries) parts.users.set(key, compileUser(parts, key, input));
      }
    }
    if (this.plainOf === undefined) this.plain = parts.document;
    this.defaults = parts.defaults;
    this.groups = parts.groups;
    this.users = parts.users;
    this.sharedPerMs = parts.sharedPerMs;
    if (options.combinationsChecked !== true) this.checkCombinations();
  }

  /**
   * Rules that are each valid can combine into an invalid one (a window algorithm from one
   * level with a burst from another). Every named action is resolved for every group and
   * every listed user, and validated as a request would be, so such a document is refused
   * at load, not at a request (up to maxCheckedCombinations; past it, at the request).
   */
  private checkCombinations(): void {
    const actions = new Set<string>(['default']);
    const addNames = (table: ActionTable): void => {
      for (const name of table.exact.keys()) actions.add(name);
      for (const [prefix] of table.prefixes) actions.add(`${prefix}x`);
    };
    addNames(this.defaults);
    for (const level of this.groups.values()) addNames(level.table);
    for (const user of this.users.values()) addNames(user.table);
    if ((1 + this.groups.size + this.users.size) * actions.size > policyLimits.maxCheckedCombinations) return;
    const subjects: [string, (action: string) => ResolvedPolicy][] = [['defaults', (action) => this.forGroup('', action)]];
    for (const name of this.groups.keys()) subjects.push([`groups.${name}`, (action) => this.forGroup(name, action)]);
    for (const key of this.users.keys()) subjects.push([`users.${key}`, (action) => this.resolve(key, action, undefined)]);
    if (subjects.length * actions.size > policyLimits.maxCheckedCombinations) return;
    const scratch = newResolvedParams();
    for (const [path, resolve] of subjects) {
      for (const action of actions) {
        const said = resolve(action);
        if (said.limit === undefined || (said.windowMs === undefined && said.calendar === undefined)) continue;
        try {
          resolveRequest({ key: 'check', action }, scratch, said);
        } catch (error) {
          throw fail(path, `for action ${JSON.stringify(action)} its rules combine into an invalid one: ${(error as Error).message}`);
        }
      }
    }
  }

  /**
   * What the policies say for this user (request key), group and action: the fields they
   * set (none, when no rule applies). Cached per (group, action) and per user.
   */
  resolve(key: string, action: string, group: string | undefined): ResolvedPolicy {
    // A group the document does not define has no rules: the same as none (and nothing to remember under its name).
    const known = group !== undefined && this.groups.has(group) ? group : undefined;
    // The common case first: no group, a user the document does not list, the action asked last.
    if (known === undefined && this.users.size === 0) {
      if (action === this.lastAction) return this.lastResolved;
      const resolved = this.noGroup.get(action) ?? this.forGroup('', action);
      this.lastAction = action;
      this.lastResolved = resolved;
      return resolved;
    }
    const user = this.users.size === 0 ? undefined : this.users.get(key);
    const groupName = user?.group ?? known ?? '';
    if (user !== undefined) {
      const resolved = user.cache?.get(groupName)?.get(action);
      if (resolved !== undefined) return resolved;
      const fresh = { ...this.forGroup(groupName, action) };
      overlay(fresh, user.base);
      overlayTable(fresh, user.table, action);
      if (this.cached >= policyLimits.maxCachedResolutions) return fresh;
      return this.remember((user.cache ??= new Map()), groupName, action, fresh);
    }
    return this.forGroup(groupName, action);
  }

  private forGroup(groupName: string, action: string): ResolvedPolicy {
    const resolved = (groupName === '' ? this.noGroup : this.cache.get(groupName))?.get(action);
    if (resolved !== undefined) return resolved;
    const fresh: ResolvedPolicy = { limit: undefined, windowMs: undefined, calendar: undefined, algorithm: undefined, burst: undefined, weight: undefined };
    overlayTable(fresh, this.defaults, action);
    const level = this.groups.get(groupName);
    if (level !== undefined) {
      overlay(fresh, level.base);
      overlayTable(fresh, level.table, action);
    }
    if (groupName === '') return this.remember(undefined, groupName, action, fresh);
    return this.remember(this.cache, groupName, action, fresh);
  }

  /** Keeps a resolution in `byGroup` (undefined: the no-group map) while under maxCachedResolutions. */
  private remember(byGroup: Map<string, Map<string, ResolvedPolicy>> | undefined, groupName: string, action: string, resolved: ResolvedPolicy): ResolvedPolicy {
    if (this.cached >= policyLimits.maxCachedResolutions) return resolved;
    let byAction = byGroup === undefined ? this.noGroup : byGroup.get(groupName);
    if (byAction === undefined && byGroup !== undefined) byGroup.set(groupName, (byAction = new Map()));
    byAction?.set(action, resolved);
    this.cached++;
    return resolved;
  }

  /** What the policies say for a request not yet validated (a request of another shape gets nothing; validation refuses it). */
  sayFor(request: RateLimitRequest): ResolvedPolicy | undefined {
    if (typeof request !== 'object' || request === null) return undefined;
    const { key, action, group } = request;
    if (typeof key !== 'string' || (action !== undefined && typeof action !== 'string') || (group !== undefined && typeof group !== 'string')) return undefined;
    // An action validation will refuse is not resolved (nor remembered).
    if (action !== undefined && (action.length === 0 || action.length > requestLimits.maxActionBytes)) return undefined;
    return this.resolve(key, action ?? 'default', group);
  }

  /** Whether the document shares some action's capacity among its users. */
  get hasShared(): boolean {
    return this.sharedPerMs.size > 0;
  }

  /** The capacity `action` shares among its users (units per ms), if the document gives one. */
  sharedCapacity(action: string): number | undefined {
    return this.sharedPerMs.size === 0 ? undefined : this.sharedPerMs.get(action);
  }

  /** Resolutions remembered (at most policyLimits.maxCachedResolutions). */
  get cachedResolutions(): number {
    return this.cached;
  }

}
