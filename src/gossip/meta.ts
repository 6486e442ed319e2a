import { invalidArgument } from '../common/errors.js';
import type { SwimLimits } from './defaults.js';
import type { Meta } from './types.js';

export const META_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Metadata size as counted against maxMetaBytes: UTF-8 bytes of every key and value. */
export function metaBytes(meta: Meta): number {
  let total = 0;
  for (const [key, value] of Object.entries(meta)) total += Buffer.byteLength(key) + Buffer.byteLength(value);
  return total;
}

/** Why a metadata map is unacceptable, or undefined when it is fine. */
export function metaProblem(meta: unknown, limits: SwimLimits): string | undefined {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return 'must be an object of string values';
  const entries = Object.entries(meta);
  if (entries.length > limits.maxMetaEntries) return `at most ${limits.maxMetaEntries} entries, got ${entries.length}`;
  for (const [key, value] of entries) {
    if (!META_KEY.test(key)) return `key ${JSON.stringify(key.slice(0, 80))} must match ${META_KEY.source}`;
    if (typeof value !== 'string') return `value of ${key} must be a string`;
  }
  const size = metaBytes(meta as Meta);
  if (size > limits.maxMetaBytes) return `is ${size} bytes, over the ${limits.maxMetaBytes}-byte limit (limits.maxMetaBytes)`;
  return undefined;
}

/** Validated, frozen, prototype-free copy; throws INVALID_ARGUMENT with the reason. */
export function checkedMeta(meta: unknown, limits: SwimLimits, field = 'meta'): Meta {
  const problem = metaProblem(meta, limits);
  if (problem !== undefined) throw invalidArgument(field, problem);
  return freezeMeta(meta as Meta);
}

/** The one empty metadata map: most members have none, and a table of thousands need not hold thousands of copies. */
export const EMPTY_META: Meta = Object.freeze(Object.create(null) as Record<string, string>);

export function freezeMeta(meta: Meta): Meta {
  if (Object.keys(meta).length === 0) return EMPTY_META;
  const copy: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const key of Object.keys(meta).sort()) copy[key] = meta[key] ?? '';
  return Object.freeze(copy);
}

export function sameMeta(a: Meta, b: Meta): boolean {
  const ak = Object.keys(a);
  if (ak.length !== Object.keys(b).length) return false;
  return ak.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
