import { readFileSync, statSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { RingLimitError } from '../../common/errors.js';
import { Policies } from '../../limiter/policies.js';

/** A policy file larger than this is refused (a document of a million users is about 60 MB). */
const MAX_POLICY_FILE_BYTES = 128 * 1024 * 1024;

/**
 * Reads and compiles a policy file, YAML or JSON (JSON is YAML): throws INVALID_ARGUMENT
 * naming the file and, for a mistake in the document, the path in it and what is wrong;
 * for a syntax error, the line and column.
 */
export function readPolicyFile(path: string): Policies {
  let text: string;
  let modifiedMs: number;
  try {
    const stat = statSync(path);
    if (stat.size > MAX_POLICY_FILE_BYTES) throw new Error(`larger than ${MAX_POLICY_FILE_BYTES} bytes`);
    modifiedMs = Math.round(stat.mtimeMs);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new RingLimitError('INVALID_ARGUMENT', `${path}: cannot read the policy file: ${(error as Error).message}`, 'policies');
  }
  const policies = parsePolicyText(text, path);
  // A node started with this file offers it at its modification time: a newer change in the cluster wins, an older one loses.
  policies.version = modifiedMs;
  return policies;
}

/** Parses and compiles a policy document given as YAML or JSON text; errors name `source`. */
export function parsePolicyText(text: string, source: string): Policies {
  const document = parseDocument(text, { uniqueKeys: true });
  const syntax = document.errors[0];
  if (syntax !== undefined) {
    const at = syntax.linePos?.[0];
    throw new RingLimitError('INVALID_ARGUMENT', `${source}${at === undefined ? '' : `:${at.line}:${at.col}`}: ${syntax.message.split('\n')[0]}`, 'policies');
  }
  try {
    return new Policies(document.toJS({ maxAliasCount: 100 }) ?? {});
  } catch (error) {
    if (error instanceof RingLimitError) throw new RingLimitError(error.code, `${source}: ${error.message}`, error.field);
    throw error;
  }
}

export interface PolicyFileWatch {
  close(): void;
}

/**
 * Re-reads a policy file when it changes (checked every `intervalMs`, by size and mtime: a
 * poll works on every file system, editors' rename-into-place included). A good document
 * goes to onChange; a bad one to onError and the policies in force stay.
 */
export function watchPolicyFile(path: string, intervalMs: number, onChange: (policies: Policies) => void, onError: (error: Error) => void): PolicyFileWatch {
  return watchConfigFile(path, intervalMs, readPolicyFile, onChange, onError);
}

/** watchPolicyFile() for every file `read` parses (readEnvoyConfigFile for an envoyproxy/ratelimit file). */
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
