import { createHmac, timingSafeEqual } from 'node:crypto';
import { invalidArgument } from '../common/errors.js';

export const MAC_BYTES = 16;
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 64;
const MAX_KEYS = 16;

export type KeyInput = Uint8Array | string;

function toKey(input: KeyInput, field: string): Buffer {
  const key = typeof input === 'string' ? Buffer.from(input, 'base64') : Buffer.from(input);
  if (typeof input === 'string' && key.toString('base64').replace(/=+$/, '') !== input.replace(/=+$/, '')) {
    throw invalidArgument(field, 'string keys must be base64');
  }
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw invalidArgument(field, `key must be ${MIN_KEY_BYTES}..${MAX_KEY_BYTES} bytes, got ${key.length}`);
  }
  return key;
}

/**
 * Shared-secret keyring: packets are authenticated with HMAC-SHA-256 truncated to 16 bytes.
 * Sends use the primary key; receives accept any installed key, so keys rotate without downtime
 * (install everywhere, then make primary everywhere, then remove the old one).
 */
export class Keyring {
  private keys: Buffer[];

  constructor(keys: readonly KeyInput[]) {
    if (keys.length === 0) throw invalidArgument('keys', 'a keyring needs at least one key');
    if (keys.length > MAX_KEYS) throw invalidArgument('keys', `at most ${MAX_KEYS} keys, got ${keys.length}`);
    this.keys = keys.map((k, i) => toKey(k, `keys[${i}]`));
  }

  get size(): number {
    return this.keys.length;
  }

  install(key: KeyInput): void {
    const k = toKey(key, 'key');
    if (this.indexOf(k) >= 0) return;
    if (this.keys.length >= MAX_KEYS) throw invalidArgument('key', `keyring is full (${MAX_KEYS} keys)`);
    this.keys.push(k);
  }

  /** Make an installed (or new) key the primary, used for sending. */
  usePrimary(key: KeyInput): void {
    const k = toKey(key, 'key');
    const i = this.indexOf(k);
    if (i >= 0) this.keys.splice(i, 1);
    this.keys.unshift(k);
  }

  remove(key: KeyInput): void {
    const k = toKey(key, 'key');
    const i = this.indexOf(k);
    if (i === 0) throw invalidArgument('key', 'cannot remove the primary key; make another key primary first');
    if (i > 0) this.keys.splice(i, 1);
  }

  mac(bytes: Uint8Array): Buffer {
    return macWith(this.primary(), bytes);
  }

  /** True when `tag` is the MAC of `bytes` under any installed key. */
  verify(bytes: Uint8Array, tag: Uint8Array): boolean {
    if (tag.length !== MAC_BYTES) return false;
    return this.keys.some((key) => timingSafeEqual(macWith(key, bytes), tag));
  }

  private primary(): Buffer {
    const key = this.keys[0];
    if (key === undefined) throw new Error('unreachable: keyring is never empty');
    return key;
  }

  private indexOf(key: Buffer): number {
    return this.keys.findIndex((k) => k.equals(key));
  }
}

function macWith(key: Buffer, bytes: Uint8Array): Buffer {
  return createHmac('sha256', key).update(bytes).digest().subarray(0, MAC_BYTES);
}
