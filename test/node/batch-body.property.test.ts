import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchBodyReader } from '../../src/node/api/batch-body.js';
import { MAX_BATCH_ITEMS } from '../../src/node/api/backend.js';
import { HttpError } from '../../src/node/api/http-json.js';

/** What the reader gives for `text`: the requests, or the HttpError's field and message; and how many steps it took. */
function read(text: string): { requests?: unknown[]; error?: string; steps: number } {
  const reader = new BatchBodyReader(Buffer.from(text));
  let steps = 0;
  try {
    while (reader.step()) steps++;
    return { requests: reader.result(), steps };
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    return { error: `${error.field}: ${error.message}`, steps };
  }
}

/** What one JSON.parse of the whole body gives, as the API answered before (same errors). */
function whole(text: string): { requests?: unknown[]; error?: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { error: 'body: the body must be JSON' };
  }
  const requests = (body as { requests?: unknown } | null)?.requests;
  if (typeof body !== 'object' || body === null || !Array.isArray(requests)) return { error: 'requests: the body must be { "requests": [ ... ] }' };
  if (requests.length > MAX_BATCH_ITEMS) return { error: `requests: at most ${MAX_BATCH_ITEMS} requests per batch` };
  return { requests };
}

const ws = fc.constantFrom('', ' ', '\n', '\t ', '\r\n  ');
const item = fc.oneof(
  fc.record({ key: fc.string(), action: fc.string(), limit: fc.integer(), windowMs: fc.integer() }, { requiredKeys: ['key'] }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.constant({ key: 'a"b\\"c]}{[,', nested: { a: [1, [2, { b: '}' }]] } }),
);
/** A batch body as a client might write it: any whitespace between the tokens. */
const body = fc.tuple(fc.array(item, { maxLength: 40 }), fc.array(ws, { minLength: 64, maxLength: 64 })).map(([items, spaces]) => {
  let s = `${spaces[0]}{${spaces[1]}"requests"${spaces[2]}:${spaces[3]}[`;
  items.forEach((v, i) => {
    s += `${i > 0 ? `,${spaces[(i * 3) % 64]}` : spaces[4]}${JSON.stringify(v)}${spaces[(i * 5 + 1) % 64]}`;
  });
  return `${s}]${spaces[5]}}${spaces[6]}`;
});

describe('BatchBodyReader: a batch body read in steps means what JSON.parse of it means', () => {
  it('well-formed bodies: the same requests', () => {
    fc.assert(
      fc.property(body, (text) => {
        expect(read(text)).toMatchObject(whole(text));
      }),
      { numRuns: 500 },
    );
  });

  it('damaged bodies (a character cut, doubled or replaced): the same requests or the same refusal', () => {
    const damaged = fc.tuple(body, fc.nat(), fc.constantFrom('cut', 'double', ',', ']', '}', '"', '\\', '[', '{', ' ', 'x', '\u00a0')).map(([text, at, how]) => {
      const i = at % Math.max(1, text.length);
      if (how === 'cut') return text.slice(0, i) + text.slice(i + 1);
      if (how === 'double') return text.slice(0, i) + text[i] + text.slice(i);
      return text.slice(0, i) + how + text.slice(i + 1);
    });
    fc.assert(
      fc.property(damaged, (text) => {
        const expected = whole(text);
        const got = read(text);
        if (expected.error !== undefined) expect(got.error).toBe(expected.error);
        else expect(got.requests).toEqual(expected.requests);
      }),
      { numRuns: 3_000 },
    );
  });

  it('other shapes (more keys, a second "requests", escapes in the key) are read whole, as before', () => {
    for (const text of ['{"requests":[{"key":"a"}],"x":1}', '{"x":1,"requests":[{"key":"a"}]}', '{"requests":[1],"requests":[{"key":"b"}]}', '{"re\\u0071uests":[{"key":"c"}]}', '[]', '{"requests":{}}', '\u00a0{"requests":[]}']) {
      expect(read(text)).toMatchObject(whole(text));
    }
  });

  it('a 10,000-request body is read in steps of bounded work; one request more is refused for the count', () => {
    const requests = Array.from({ length: MAX_BATCH_ITEMS }, (_, i) => ({ key: `flood-${i}`, action: 'http-flood', limit: 1_000_000, windowMs: 60_000 }));
    const text = JSON.stringify({ requests });
    const got = read(text);
    expect(got.requests).toEqual(requests);
    expect(got.steps).toBeGreaterThanOrEqual(MAX_BATCH_ITEMS / 200);
    expect(read(JSON.stringify({ requests: [...requests, { key: 'one more' }] })).error).toBe(`requests: at most ${MAX_BATCH_ITEMS} requests per batch`);
  });
});
