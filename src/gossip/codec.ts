import { Packr, Unpackr } from 'msgpackr';

// Plain MessagePack only: no record extension, no structured clones, maps as plain objects.
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** msgpackr adapter: the only file that touches the library. */
export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Never throws: malformed input yields `{ ok: false }`. */
export function decodeValue(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: unpackr.unpack(bytes) };
  } catch {
    return { ok: false };
  }
}
