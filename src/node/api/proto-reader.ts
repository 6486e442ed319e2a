import { RingLimitError } from '../../common/errors.js';

/** Protobuf wire types, and a field's tag from its number and wire type. */
export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
export const FIXED32 = 5;
export const tag = (field: number, wireType: number): number => (field << 3) | wireType;

/** The last string a field decoded, with its bytes (see ProtoReader.repeatedString). */
export interface LastString {
  bytes: Buffer;
  value: string;
}

export const lastString = (): LastString => ({ bytes: Buffer.alloc(0), value: '' });

/** Strings longer than this are not remembered: they seldom repeat. */
const MAX_REMEMBERED_BYTES = 64;

/**
 * A bounds-checked protobuf reader over one message, the counterpart of ProtoWriter: every
 * read past its end throws INVALID_ARGUMENT, naming the message (`what`). Nested messages
 * are read in place: delimitedEnd() gives where one ends, and the caller checks it read
 * exactly to there (endOf).
 */
export class ProtoReader {
  pos = 0;
  readonly end: number;
  private readonly buf: Buffer;
  private readonly view: DataView;

  constructor(
    bytes: Uint8Array,
    private readonly what: string,
  ) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.length;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  malformed(why: string): RingLimitError {
    return new RingLimitError('INVALID_ARGUMENT', `malformed ${this.what}: ${why}`);
  }

  /** A varint as a number: exact up to 2^53; a 64-bit value with the top bit set reads as a negative int64. */
  varint(): number {
    let lo = 0;
    let hi = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) throw this.malformed('truncated varint');
      const b = this.buf[this.pos++]!;
      const bits = b & 0x7f;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (shift - 32);
      if (b < 0x80) {
        lo >>>= 0;
        hi >>>= 0;
        if (hi < 0x80000000) return hi * 4_294_967_296 + lo;
        const negLo = (~lo + 1) >>> 0;
        const negHi = (~hi + (negLo === 0 ? 1 : 0)) >>> 0;
        return -(negHi * 4_294_967_296 + negLo);
      }
    }
    throw this.malformed('varint longer than 10 bytes');
  }

  double(): number {
    if (this.pos + 8 > this.end) throw this.malformed('truncated double');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** The end of a length-delimited field starting here. */
  delimitedEnd(): number {
    const length = this.varint();
    if (length < 0 || this.pos + length > this.end) throw this.malformed('length past the end');
    return this.pos + length;
  }

  /** Throws unless the nested message that ends at `end` was read exactly to its end. */
  endOf(end: number): void {
    if (this.pos !== end) throw this.malformed('field past its message');
  }

  string(): string {
    const end = this.delimitedEnd();
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return s;
  }

  /**
   * A string that usually repeats (an action, an algorithm): when its bytes are those of
   * the last one read into `last`, that same string, without decoding or allocating.
   */
  repeatedString(last: LastString): string {
    const end = this.delimitedEnd();
    const length = end - this.pos;
    if (length === last.bytes.length && this.buf.compare(last.bytes, 0, length, this.pos, end) === 0) {
      this.pos = end;
      return last.value;
    }
    const s = this.buf.toString('utf8', this.pos, end);
    if (length <= MAX_REMEMBERED_BYTES) {
      last.bytes = Buffer.from(this.buf.subarray(this.pos, end));
      last.value = s;
    }
    this.pos = end;
    return s;
  }

  /** Steps over a field of an unknown number. */
  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        this.varint();
        return;
      case FIXED64:
        if ((this.pos += 8) > this.end) throw this.malformed('truncated field');
        return;
      case LENGTH_DELIMITED:
        this.pos = this.delimitedEnd();
        return;
      case FIXED32:
        if ((this.pos += 4) > this.end) throw this.malformed('truncated field');
        return;
      default:
        throw this.malformed(`wire type ${wireType}`);
    }
  }
}

/**
 * How many length-delimited fields numbered `field` the message from `r.pos` to `end` holds,
 * counting no further than `max + 1`: every field is stepped over, none decoded, so a request
 * with a million items costs a scan of its first `max + 1` (and throws INVALID_ARGUMENT when
 * malformed). Leaves `r.pos` where it stopped.
 */
export function countFields(r: ProtoReader, end: number, field: number, max: number): number {
  const wanted = tag(field, LENGTH_DELIMITED);
  let count = 0;
  while (r.pos < end && count <= max) {
    const t = r.varint();
    if (t === wanted) count++;
    r.skip(t & 7);
  }
  if (r.pos > end) throw r.malformed('field past its message');
  return count;
}

/** Bytes a repeated message field takes at least (its tag and a zero length): a message shorter than `max` times this cannot hold more than `max`. */
export const MIN_FIELD_BYTES = 2;
