/**
 * Duplicate keys in JSON, in linear time: JSON.parse keeps the last of two equal keys
 * silently, YAML (and so a policy document) refuses them. Scans a text JSON.parse has
 * accepted, keeping the keys of each open object (an array while it is small, a Set past
 * that), and returns the offset of the first key its object already has.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SMALL_OBJECT = 16;

interface Frame {
  isObject: boolean;
  expectKey: boolean;
  few: string[];
  many: Set<string> | undefined;
}

/** Adds `key` to the frame; false when it was there already. */
function addKey(frame: Frame, key: string): boolean {
  if (frame.many !== undefined) {
    if (frame.many.has(key)) return false;
    frame.many.add(key);
    return true;
  }
  if (frame.few.includes(key)) return false;
  frame.few.push(key);
  if (frame.few.length > SMALL_OBJECT) frame.many = new Set(frame.few);
  return true;
}

/** The offset of the first string's closing quote after `open`. */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  for (;;) {
    let slashes = 0;
    while (text.charCodeAt(at - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
}

/** The offset of the first repeated key of some object in `text` (valid JSON), or undefined. */
export function firstDuplicateKey(text: string): number | undefined {
  // Frames are kept by depth and reused: a million small objects cost no allocation each.
  const frames: Frame[] = [];
  let depth = 0;
  let top: Frame | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = closingQuote(text, i);
      if (top !== undefined && top.isObject && top.expectKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (!addKey(top, key)) return i;
        top.expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      top = frames[depth] ??= { isObject: false, expectKey: true, few: [], many: undefined };
      top.isObject = c === 0x7b;
      top.expectKey = true;
      top.few.length = 0;
      top.many = undefined;
      depth++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
      top = depth === 0 ? undefined : frames[depth - 1];
    } else if (c === 0x2c /* , */ && top !== undefined && top.isObject) top.expectKey = true;
  }
  return undefined;
}

/** 1-based line and column of `offset`, as the YAML parser reports them. */
export function linePos(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let at = text.indexOf('\n'); at !== -1 && at < offset; at = text.indexOf('\n', at + 1)) {
    line++;
    lineStart = at + 1;
  }
  return { line, col: offset - lineStart + 1 };
}
