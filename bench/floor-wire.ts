/**
 * The transport floor's wire format, both ends: the least a decision round trip between two
 * Node.js processes can carry. A request frame is [count u16, then per call: id u32,
 * key length u8, key latin1]; an answer frame is [count u16, then per call: id u32,
 * allowed u8, remaining u32]. Over raw TCP every frame is preceded by its length (u32 LE);
 * over gRPC the message is the frame.
 */

/** One request frame for `keys` with ids `ids` (keys shorter than 256 bytes, latin1). */
export function encodeCalls(keys: readonly string[], ids: readonly number[], lengthPrefix: boolean): Buffer {
  const head = lengthPrefix ? 4 : 0;
  let size = head + 2;
  for (const key of keys) size += 5 + key.length;
  const frame = Buffer.allocUnsafe(size);
  if (lengthPrefix) frame.writeUInt32LE(size - 4, 0);
  frame.writeUInt16LE(keys.length, head);
  let at = head + 2;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    frame.writeUInt32LE(ids[i]!, at);
    frame[at + 4] = key.length;
    at += 5 + frame.write(key, at + 5, 'latin1');
  }
  return frame;
}

/** The server's work per frame: count each key in `counts`, answer every call allowed. */
export function answerCalls(frame: Buffer, start: number, counts: Map<string, number>, lengthPrefix: boolean): Buffer {
  const count = frame.readUInt16LE(start);
  const head = lengthPrefix ? 4 : 0;
  const out = Buffer.allocUnsafe(head + 2 + count * 9);
  if (lengthPrefix) out.writeUInt32LE(out.length - 4, 0);
  out.writeUInt16LE(count, head);
  let at = start + 2;
  let to = head + 2;
  for (let i = 0; i < count; i++) {
    const id = frame.readUInt32LE(at);
    const length = frame[at + 4]!;
    const key = frame.toString('latin1', at + 5, at + 5 + length);
    at += 5 + length;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    out.writeUInt32LE(id, to);
    out[to + 4] = 1;
    out.writeUInt32LE(Math.max(0, 1_000_000_000 - n), to + 5);
    to += 9;
  }
  return out;
}

/** Reads one answer frame starting at `start`, handing each (id, allowed, remaining) to `settle`. */
export function readAnswers(frame: Buffer, start: number, settle: (id: number, allowed: boolean, remaining: number) => void): void {
  const count = frame.readUInt16LE(start);
  let at = start + 2;
  for (let i = 0; i < count; i++) {
    settle(frame.readUInt32LE(at), frame[at + 4] === 1, frame.readUInt32LE(at + 5));
    at += 9;
  }
}

/**
 * Splits a byte stream into length-prefixed frames: `onFrame(buffer, start)` gets each
 * frame's body (the bytes after its length) at `start` in `buffer`.
 */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (buffer: Buffer, start: number) => void) {}

  push(chunk: Buffer): void {
    const buffer = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (buffer.length - at >= 4) {
      const length = buffer.readUInt32LE(at);
      if (buffer.length - at - 4 < length) break;
      this.onFrame(buffer, at + 4);
      at += 4 + length;
    }
    this.pending = buffer.subarray(at);
  }
}
