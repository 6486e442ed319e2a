/**
 * A protobuf writer for the AllowStream hot path: it writes straight into one growing
 * buffer (no object per field, unlike a general writer that queues an operation per
 * write), and nests messages by reserving one length byte that is widened in place in
 * the rare case a nested message reaches 128 bytes.
 */
export class ProtoWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64, initialBytes));
  }

  /** A tag or any non-negative integer below 2^53. */
  uint(value: number): this {
    this.ensure(10);
    if (value <= 0x7fffffff) {
      // Most values (tags, ids, counts): 32-bit shifts instead of division.
      let small = value | 0;
      while (small > 0x7f) {
        this.buf[this.pos++] = (small & 0x7f) | 0x80;
        small >>>= 7;
      }
      this.buf[this.pos++] = small;
      return this;
    }
    let v = value;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  /**
   * An int64 field from a JS number: a negative one in ten bytes of two's complement, as
   * protobuf has it. A non-integer is truncated and a non-finite one written as 0 (the
   * node then refuses what no longer makes sense), as a general protobuf writer does.
   */
  int64(value: number): this {
    if (value >= 0 && value <= Number.MAX_SAFE_INTEGER) return this.uint(Math.trunc(value));
    if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) return this.uint(Number.isFinite(value) ? Number.MAX_SAFE_INTEGER : 0);
    let v = BigInt.asUintN(64, BigInt(Math.trunc(value)));
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
    return this;
  }

  double(value: number): this {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
    return this;
  }

  bool(value: boolean): this {
    this.ensure(1);
    this.buf[this.pos++] = value ? 1 : 0;
    return this;
  }

  /** A length-delimited UTF-8 string. */
  string(value: string): this {
    if (value.length < 43) {
      // At most 126 bytes in UTF-8: the length fits one byte, written after the text.
      this.ensure(1 + 3 * value.length);
      const written = this.buf.write(value, this.pos + 1, 'utf8');
      this.buf[this.pos] = written;
      this.pos += 1 + written;
      return this;
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    this.uint(bytes);
    this.ensure(bytes);
    this.pos += this.buf.write(value, this.pos, 'utf8');
    return this;
  }

  /** Starts a nested message; pass the result to endMessage(). */
  beginMessage(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the nested message begun at `start`: writes its length before it. */
  endMessage(start: number): this {
    const length = this.pos - start - 1;
    if (length < 0x80) {
      this.buf[start] = length;
      return this;
    }
    let extra = 0;
    for (let v = length; v >= 0x80; v = Math.floor(v / 0x80)) extra++;
    this.ensure(extra);
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    let at = start;
    let v = length;
    while (v >= 0x80) {
      this.buf[at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[at] = v;
    this.pos += extra;
    return this;
  }

  /** The bytes written, in a buffer of their own. */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }
}
