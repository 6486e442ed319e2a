import { parseDocument, visit, isScalar, type Document } from 'yaml';
import { RingLimitError } from '../../common/errors.js';
import { Policies } from '../../limiter/policies.js';
import { firstDuplicateKey, linePos } from './json-duplicate-key.js';

/**
 * A policy document's text (YAML or JSON) to plain data, in linear time: the YAML
 * library's own duplicate-key check compares each key with every key before it (a
 * million-user document never finished), so keys are checked here with a Set per mapping.
 * A text that is JSON (no tab, starts with "{") goes through JSON.parse, many times faster
 * than the YAML parser; anything JSON.parse refuses goes to the YAML parser as before, so
 * the same documents are accepted, with the same values, and refused with the same errors.
 */

/** Bounds on a policy document, with the option that sets each. */
export interface PolicyBounds {
  /** Bytes of the document's text (UTF-8). */
  maxBytes: number;
  /** Users it may list. */
  maxUsers: number;
}

export const policyBoundsDefaults: PolicyBounds = { maxBytes: 64 * 1024 * 1024, maxUsers: 1_000_000 };

/** The node options that set each bound, named in its error. */
export const POLICY_BOUND_OPTIONS = { maxBytes: 'policyMaxBytes', maxUsers: 'policyMaxUsers' } as const;

const invalid = (source: string, at: { line: number; col: number } | undefined, message: string): RingLimitError =>
  new RingLimitError('INVALID_ARGUMENT', `${source}${at === undefined ? '' : `:${at.line}:${at.col}`}: ${message}`, 'policies');

/** RESOURCE_EXHAUSTED naming policyMaxBytes when `text` is larger than the bound. */
export function checkPolicyBytes(bytes: number, source: string, bounds: PolicyBounds): void {
  if (bytes > bounds.maxBytes) {
    throw new RingLimitError('RESOURCE_EXHAUSTED', `${source}: the policy document is ${bytes} bytes; at most ${bounds.maxBytes} (${POLICY_BOUND_OPTIONS.maxBytes})`, POLICY_BOUND_OPTIONS.maxBytes);
  }
}

function looksLikeJson(text: string): boolean {
  return /^[ \r\n]*\{/.test(text) && !text.includes('\t');
}

/** The offset of the first key a YAML mapping repeats (keys equal as the YAML library compares them), or undefined. */
function yamlDuplicateKey(document: Document): number | undefined {
  let found: number | undefined;
  visit(document, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = pair.key;
        // The library compares scalars by value with ===: NaN never equals itself.
        if (!isScalar(key) || Number.isNaN(key.value)) continue;
        if (seen.has(key.value)) {
          const offset = key.range?.[0] ?? 0;
          if (found === undefined || offset < found) found = offset;
          return;
        }
        seen.add(key.value);
      }
    },
  });
  return found;
}

/** Parses a policy document's text to plain data (not validated: new Policies() does that); errors name `source`. */
export function parsePolicyDocument(text: string, source: string, bounds: PolicyBounds = policyBoundsDefaults): unknown {
  checkPolicyBytes(Buffer.byteLength(text, 'utf8'), source, bounds);
  if (looksLikeJson(text)) {
    let value: unknown;
    let parsed = true;
    try {
      value = JSON.parse(text);
    } catch {
      parsed = false; // not JSON after all: the YAML parser decides, and words the error
    }
    if (parsed) {
      const duplicate = firstDuplicateKey(text);
      if (duplicate !== undefined) throw invalid(source, linePos(text, duplicate), 'Map keys must be unique');
      return value ?? {};
    }
  }
  const document = parseDocument(text, { uniqueKeys: false });
  const syntax = document.errors[0];
  const duplicate = yamlDuplicateKey(document);
  if (duplicate !== undefined && (syntax === undefined || duplicate <= syntax.pos[0])) throw invalid(source, linePos(text, duplicate), 'Map keys must be unique');
  if (syntax !== undefined) throw invalid(source, syntax.linePos?.[0], syntax.message.split('\n')[0] ?? '');
  return document.toJS({ maxAliasCount: 100 }) ?? {};
}

/** new Policies(document), its errors prefixed with `source`. */
export function compilePolicies(document: unknown, source: string, bounds: PolicyBounds = policyBoundsDefaults): Policies {
  try {
    return new Policies(document, { maxUsers: bounds.maxUsers, maxUsersOption: POLICY_BOUND_OPTIONS.maxUsers });
  } catch (error) {
    throw prefixed(error, source);
  }
}

/** A RingLimitError with `source: ` before its message; anything else as it is. */
export function prefixed(error: unknown, source: string): unknown {
  if (error instanceof RingLimitError) return new RingLimitError(error.code, `${source}: ${error.message}`, error.field);
  return error;
}

/** Parses and compiles a policy document given as YAML or JSON text, at once (on this thread); errors name `source`. */
export function parsePolicyText(text: string, source: string, bounds: PolicyBounds = policyBoundsDefaults): Policies {
  return compilePolicies(parsePolicyDocument(text, source, bounds), source, bounds);
}
