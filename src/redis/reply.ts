const utf8 = new TextDecoder();

/**
 * The script's reply: one MessagePack array of numbers (Redis's cmsgpack), read into `out`.
 * One bulk string per batch instead of five per decision, and doubles travel exact. Only
 * the forms cmsgpack writes for numbers are accepted; anything else is refused, never guessed.
 * With `strings`, strings are accepted too (a refused decision's held window): each is pushed
 * onto `strings`, and its index there put in `out`.
 */
export function readNumberArray(bytes: Uint8Array, out: number[], strings?: string[]): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const first = bytes[at++];
  let count: number;
  if (first === undefined) return false;
  if (first >= 0x90 && first <= 0x9f) count = first & 0x0f;
  else if (first === 0xdc && at + 2 <= bytes.length) {
    count = view.getUint16(at);
    at += 2;
  } else if (first === 0xdd && at + 4 <= bytes.length) {
    count = view.getUint32(at);
    at += 4;
  } else return false;
  out.length = 0;
  if (strings !== undefined) strings.length = 0;
  for (let i = 0; i < count; i++) {
    const tag = bytes[at++];
    if (tag === undefined) return false;
    let value: number;
    let size = 0;
    if (tag <= 0x7f) value = tag;
    else if (tag >= 0xe0) value = tag - 0x100;
    else if (strings !== undefined && ((tag >= 0xa0 && tag <= 0xbf) || (tag >= 0xd9 && tag <= 0xdb) || (tag >= 0xc4 && tag <= 0xc6))) {
      // fixstr, str 8/16/32 (cmsgpack's strings), bin 8/16/32
      const lengthSize = tag <= 0xbf ? 0 : tag === 0xd9 || tag === 0xc4 ? 1 : tag === 0xda || tag === 0xc5 ? 2 : 4;
      if (at + lengthSize > bytes.length) return false;
      const length = lengthSize === 0 ? tag & 0x1f : lengthSize === 1 ? view.getUint8(at) : lengthSize === 2 ? view.getUint16(at) : view.getUint32(at);
      at += lengthSize;
      if (at + length > bytes.length) return false;
      value = strings.push(utf8.decode(bytes.subarray(at, at + length))) - 1;
      at += length;
    } else {
      size = tag === 0xcc || tag === 0xd0 ? 1 : tag === 0xcd || tag === 0xd1 ? 2 : tag === 0xce || tag === 0xd2 || tag === 0xca ? 4 : tag === 0xcf || tag === 0xd3 || tag === 0xcb ? 8 : -1;
      if (size < 0 || at + size > bytes.length) return false;
      switch (tag) {
        case 0xcc: value = view.getUint8(at); break;
        case 0xcd: value = view.getUint16(at); break;
        case 0xce: value = view.getUint32(at); break;
        case 0xcf: value = Number(view.getBigUint64(at)); break;
        case 0xd0: value = view.getInt8(at); break;
        case 0xd1: value = view.getInt16(at); break;
        case 0xd2: value = view.getInt32(at); break;
        case 0xd3: value = Number(view.getBigInt64(at)); break;
        case 0xca: value = view.getFloat32(at); break;
        default: value = view.getFloat64(at);
      }
      at += size;
    }
    out.push(value);
  }
  return at === bytes.length;
}
