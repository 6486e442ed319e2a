import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { invalidArgument } from '../common/errors.js';
import { EnvoyDescriptors } from '../limiter/envoy-descriptors.js';

/**
 * An envoyproxy/ratelimit configuration file (YAML, one domain per document, or JSON), as
 * that service reads it. Every unit is served (src/node/api/envoy-service.ts envoyWindow).
 */
export function parseEnvoyConfigText(text: string, source: string): EnvoyDescriptors {
  const documents = parseAllDocuments(text);
  const values: unknown[] = [];
  for (const doc of documents) {
    if (doc.errors.length > 0) throw invalidArgument(source, doc.errors[0]!.message);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  if (values.length === 0) throw invalidArgument(source, 'holds no domain');
  return new EnvoyDescriptors(values);
}

export function readEnvoyConfigFile(path: string): EnvoyDescriptors {
  return parseEnvoyConfigText(readFileSync(path, 'utf8'), path);
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
