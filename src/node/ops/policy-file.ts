import { readFileSync, statSync } from 'node:fs';
import { RingLimitError } from '../../common/errors.js';
import type { Policies } from '../../limiter/policies.js';
import { loadPolicyText } from '../sync/policy-loader.js';
import { checkPolicyBytes, parsePolicyText, policyBoundsDefaults, type PolicyBounds } from '../sync/policy-parse.js';

export { parsePolicyText } from '../sync/policy-parse.js';

function readText(path: string, bounds: PolicyBounds): { text: string; modifiedMs: number } {
  try {
    const stat = statSync(path);
    checkPolicyBytes(stat.size, path, bounds);
    return { text: readFileSync(path, 'utf8'), modifiedMs: Math.round(stat.mtimeMs) };
  } catch (error) {
    if (error instanceof RingLimitError) throw error;
    throw new RingLimitError('INVALID_ARGUMENT', `${path}: cannot read the policy file: ${(error as Error).message}`, 'policies');
  }
}

/**
 * Reads and compiles a policy file, YAML or JSON (JSON is YAML), on this thread (at start,
 * before the node serves): throws INVALID_ARGUMENT naming the file and, for a mistake in
 * the document, the path in it and what is wrong; for a syntax error, the line and column;
 * RESOURCE_EXHAUSTED naming the option for a document past a bound.
 */
export function readPolicyFile(path: string, bounds: PolicyBounds = policyBoundsDefaults): Policies {
  const { text, modifiedMs } = readText(path, bounds);
  const policies = parsePolicyText(text, path, bounds);
  // A node started with this file offers it at its modification time: a newer change in the cluster wins, an older one loses.
  policies.version = modifiedMs;
  return policies;
}

/** readPolicyFile() off the event loop (policy-loader.ts): for a file re-read while the node serves. */
export async function loadPolicyFile(path: string, bounds: PolicyBounds = policyBoundsDefaults): Promise<Policies> {
  const { text, modifiedMs } = readText(path, bounds);
  const { policies } = await loadPolicyText(text, path, bounds);
  policies.version = modifiedMs;
  return policies;
}

export interface PolicyFileWatch {
  close(): void;
}

/**
 * Re-reads a policy file when it changes (checked every `intervalMs`, by size and mtime: a
 * poll works on every file system, editors' rename-into-place included). A good document
 * goes to onChange; a bad one to onError and the policies in force stay.
 */
export function watchPolicyFile(path: string, intervalMs: number, onChange: (policies: Policies) => void, onError: (error: Error) => void, bounds: PolicyBounds = policyBoundsDefaults): PolicyFileWatch {
  // Loaded off the event loop; a change that comes while one loads is taken after it (the loads queue), newest last.
  return watchConfigFile(path, intervalMs, (file) => loadPolicyFile(file, bounds), (loading) => void loading.then(onChange).catch(onError), onError);
}

/** watchPolicyFile() for every file `read` parses (readEnvoyConfigFile for an envoyproxy/ratelimit file; `read` may return a promise, given to onChange). */
export function watchConfigFile<T>(path: string, intervalMs: number, read: (path: string) => T, onChange: (value: T) => void, onError: (error: Error) => void): PolicyFileWatch {
  const stamp = (): string => {
    try {
      const s = statSync(path);
      return `${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  let last = stamp();
  const timer = setInterval(() => {
    const now = stamp();
    if (now === last) return;
    last = now;
    if (now === 'missing') return; // mid-rename: the next check sees the new file
    try {
      onChange(read(path));
    } catch (error) {
      onError(error as Error);
    }
  }, intervalMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
