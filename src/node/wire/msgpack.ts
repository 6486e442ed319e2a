import { Packr } from 'msgpackr';

/**
 * The one place msgpackr is used for peer frames. Plain MessagePack (no record
 * extension), so a frame's meaning never depends on earlier frames.
 */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number', mapsAsObjects: true });

export function encodeMsgpack(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes, or returns undefined for bytes that are not one well-formed MessagePack value. */
export function decodeMsgpack(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch {
    return undefined;
  }
}
