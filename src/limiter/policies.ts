import { requestLimits } from './limits.js';
import type { RateLimitRequest, ResolvedPolicy } from './types.js';
import { type ActionTable, type CompiledParts, type GroupLevel, type PolicyCompileOptions, type PolicyDocument, type UserLevel, compileHead, compileUser, fail, overlay, overlayTable, policyLimits, tooManyUsers } from './policy-compile.js';
import { newResolvedParams, resolveRequest } from './validate.js';

export type { ResolvedPolicy } from './types.js';
export { policyLimits, type CalendarWindowInput, type PolicyCompileOptions, type PolicyDocument, type PolicyRuleInput } from './policy-compile.js';
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
