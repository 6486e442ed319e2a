import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { RingLimitError } from '../../common/errors.js';
import { EnvoyDescriptors, type EnvoyConfigDocument, type EnvoyLoadOptions } from '../../envoy/descriptors.js';

/**
 * envoyproxy/ratelimit configuration files, as that service reads its runtime directory:
 * every file of a directory (recursively, in name order; names starting with '.' skipped),
 * each a YAML (or JSON) document with a domain. The documents are read as the peer's YAML
 * decoder reads them (YAML 1.1: yes/no are booleans; keys may be other than strings, and
 * are then refused). Every unit is served (src/node/api/envoy-service.ts envoyWindow).
 */

/** A configuration file larger than this is refused. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** A directory holding more files than this is refused. */
const MAX_FILES = 10_000;

const unreadable = (path: string, why: string): RingLimitError => new RingLimitError('INVALID_ARGUMENT', `${path}: error loading config file: ${why}`, path);

/** The documents of one file's text; `source` names it in errors. */
export function envoyDocumentsOf(text: string, source: string): EnvoyConfigDocument[] {
  const documents = parseAllDocuments(text, { version: '1.1', uniqueKeys: true });
  const out: EnvoyConfigDocument[] = [];
  for (const doc of documents) {
    const syntax = doc.errors[0];
    if (syntax !== undefined) {
      const at = syntax.linePos?.[0];
      throw unreadable(source, `${at === undefined ? '' : `line ${at.line}: `}${syntax.message.split('\n')[0]!}`);
    }
    const value: unknown = doc.toJS({ mapAsMap: true, maxAliasCount: 100 });
    if (value !== null && value !== undefined) out.push({ name: source, value });
  }
  // An empty file is a document without a domain, which the peer refuses.
  return out.length === 0 ? [{ name: source, value: null }] : out;
}

export function parseEnvoyConfigText(text: string, source: string, options: EnvoyLoadOptions = {}): EnvoyDescriptors {
  return new EnvoyDescriptors(envoyDocumentsOf(text, source), options);
}

/** The files a path stands for: itself, or a directory's files (recursively, sorted, dot-names skipped). */
export function envoyConfigFiles(path: string): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    throw unreadable(path, (error as Error).message);
  }
  if (!stat.isDirectory()) return [path];
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      const full = join(dir, name);
      const s = statSync(full);
      if (s.isDirectory()) walk(full);
      else if (s.isFile()) {
        if (files.length >= MAX_FILES) throw unreadable(path, `more than ${MAX_FILES} files`);
        files.push(full);
      }
    }
  };
  walk(path);
  return files;
}

function readText(file: string): string {
  try {
    if (statSync(file).size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw unreadable(file, (error as Error).message);
  }
}

/** Reads every file of `paths` (files or directories) into one configuration. */
export function readEnvoyConfig(paths: readonly string[], options: EnvoyLoadOptions = {}): EnvoyDescriptors {
  const documents = paths.flatMap((path) => envoyConfigFiles(path)).flatMap((file) => envoyDocumentsOf(readText(file), file));
  return new EnvoyDescriptors(documents, options);
}

export function readEnvoyConfigFile(path: string, options: EnvoyLoadOptions = {}): EnvoyDescriptors {
  return readEnvoyConfig([path], options);
}

/** A stamp of what `paths` hold now (names, sizes, modification times): it changes when a file is added, removed or written. */
export function envoyConfigStamp(paths: readonly string[]): string {
  const parts: string[] = [];
  for (const path of paths) {
    try {
      for (const file of envoyConfigFiles(path)) {
        const s = statSync(file);
        parts.push(`${file}:${s.size}:${s.mtimeMs}`);
      }
    } catch {
      parts.push(`${path}:missing`);
    }
  }
  return parts.join('\n');
}

/** Whether a policy file is written in envoyproxy/ratelimit's format (its first document has a `domain`), not ringlimit's. */
export function isEnvoyConfigFile(path: string): boolean {
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    return typeof value === 'object' && !Array.isArray(value) && 'domain' in value;
  }
  return false;
}
