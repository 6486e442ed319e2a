import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingLimitError } from '../../src/common/errors.js';
import { rateLimiterService } from '../../src/node/api/proto.js';
import { decodeStreamRequest, decodeStreamResponse, encodeBatchResponse, encodeStreamRequest, encodeStreamResponse, type OutgoingRequest, type OutgoingResult, type ResultVisitor } from '../../src/node/api/stream-codec.js';

/** The generated protobuf codec of the .proto (what other languages and proto-loader use). */
const generated = rateLimiterService()['AllowStream']!;

interface Seen {
  decisions: unknown[][];
  errors: unknown[][];
  rings: number[];
}
const collecting = (): ResultVisitor & Seen => {
  const seen: Seen = { decisions: [], errors: [], rings: [] };
  return {
    ...seen,
    decision: (...args) => seen.decisions.push(args),
    error: (...args) => seen.errors.push(args),
    ring: (digest) => seen.rings.push(digest),
  };
};

describe('AllowStream codec: the hand-written coder agrees with the .proto', () => {
  const requests: OutgoingRequest[] = [
    { id: 1, request: { key: 'u1', limit: 10, windowMs: 60_000 }, maxWaitMs: undefined, timestampMs: 1_700_000_000_123.5 },
    {
      id: 2 ** 40 + 7,
      request: { key: 'ключ', action: 'api', limit: 2 ** 50, windowMs: 0.5, weight: 2.5, cost: 0, algorithm: 'gcra', burst: 3, global: true },
      maxWaitMs: 1_500,
      timestampMs: 0,
    },
  ];

  it('requests written here read back the same through the generated codec, and the other way', () => {
    const bytes = encodeStreamRequest(requests);
    const viaGenerated = generated.requestDeserialize(Buffer.from(bytes)) as { requests: { id: number; request: Record<string, unknown> }[] };
    expect(viaGenerated.requests.map((r) => r.id)).toEqual([1, 2 ** 40 + 7]);
    expect(viaGenerated.requests[0]!.request).toMatchObject({ key: 'u1', limit: 10, windowMs: 60_000, timestampMs: 1_700_000_000_123.5 });
    expect(viaGenerated.requests[1]!.request).toMatchObject({ key: 'ключ', action: 'api', limit: 2 ** 50, windowMs: 0.5, weight: 2.5, cost: 0, algorithm: 'gcra', burst: 3, global: true, maxWaitMs: 1_500 });

    const back = decodeStreamRequest(generated.requestSerialize(viaGenerated));
    expect(back).toEqual([
      { id: 1, request: { key: 'u1', limit: 10, windowMs: 60_000 }, maxWaitMs: undefined, timestampMs: 1_700_000_000_123.5 },
      { id: 2 ** 40 + 7, request: requests[1]!.request, maxWaitMs: 1_500, timestampMs: 0 },
    ]);
  });

  it('responses written here read back the same through the generated codec, and the other way', () => {
    const results: OutgoingResult[] = [
      { id: 5, decision: { allowed: true, limit: 100, remaining: 99, resetAtMs: 1_700_000_060_000.25, retryAfterMs: 0, waitMs: 0 }, error: undefined },
      { id: 6, decision: { allowed: false, limit: 100, remaining: 0, resetAtMs: 1, retryAfterMs: 12.5, waitMs: 0 }, error: undefined },
      { id: 7, decision: undefined, error: { code: 'INVALID_ARGUMENT', message: 'limit: must be positive', field: 'limit' } },
    ];
    const bytes = encodeStreamResponse(results, 3, 0xfedcba98);
    const viaGenerated = generated.responseDeserialize(Buffer.from(bytes)) as { results: Record<string, unknown>[]; processed: number; ring: number };
    expect(viaGenerated.processed).toBe(3);
    expect(viaGenerated.ring).toBe(0xfedcba98);
    expect(viaGenerated.results[0]).toMatchObject({ id: 5, decision: { allowed: true, limit: 100, remaining: 99, resetAtMs: 1_700_000_060_000.25 } });
    expect(viaGenerated.results[1]).toMatchObject({ id: 6, decision: { allowed: false, retryAfterMs: 12.5 } });
    expect(viaGenerated.results[2]).toMatchObject({ id: 7, error: { code: 'INVALID_ARGUMENT', field: 'limit' } });

    const seen = collecting();
    expect(decodeStreamResponse(generated.responseSerialize(viaGenerated), seen)).toBe(3);
    expect(seen.rings).toEqual([0xfedcba98]);
    expect(seen.decisions).toEqual([
      [5, true, 100, 99, 1_700_000_060_000.25, 0, 0],
      [6, false, 100, 0, 1, 12.5, 0],
    ]);
    expect(seen.errors).toEqual([[7, 'INVALID_ARGUMENT', 'limit: must be positive', 'limit']]);
  });

  it('a negative int64 (limit -1 from another language) reads as negative, so the limiter refuses it', () => {
    const bytes = generated.requestSerialize({ requests: [{ id: 1, request: { key: 'k', limit: -1, windowMs: 1000 } }] });
    expect(decodeStreamRequest(bytes)[0]!.request.limit).toBe(-1);
  });

  it('hostile bytes: every input decodes or throws INVALID_ARGUMENT, never anything else', () => {
    const valid = encodeStreamRequest(requests);
    const checkRequest = (bytes: Uint8Array): void => {
      try {
        decodeStreamRequest(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(RingLimitError);
        expect((error as RingLimitError).code).toBe('INVALID_ARGUMENT');
      }
    };
    const checkResponse = (bytes: Uint8Array): void => {
      try {
        decodeStreamResponse(bytes, collecting());
      } catch (error) {
        expect(error).toBeInstanceOf(RingLimitError);
      }
    };
    for (let cut = 0; cut < valid.length; cut++) checkRequest(valid.subarray(0, cut));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        checkRequest(bytes);
        checkResponse(bytes);
      }),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const mutated = Uint8Array.from(valid);
        mutated[at] = byte;
        checkRequest(mutated);
      }),
      { numRuns: 2_000 },
    );
  });

  it('more than 10,000 requests in one message is refused before any is read', () => {
    const many = Array.from({ length: 10_001 }, (_, id): OutgoingRequest => ({ id, request: { key: 'k', limit: 1, windowMs: 1000 }, maxWaitMs: undefined, timestampMs: 0 }));
    expect(() => decodeStreamRequest(encodeStreamRequest(many))).toThrow(/at most 10000/);
  });
});

describe('AllowBatch answers: the hand-written coder agrees with the .proto', () => {
  it('decisions and errors, in request order, read back through the generated codec', () => {
    const batch = rateLimiterService()['AllowBatch']!;
    const bytes = encodeBatchResponse([
      { decision: { allowed: true, limit: 10, remaining: 9, resetAtMs: 1_700_000_000_500.25, retryAfterMs: 0, waitMs: 0 }, error: undefined },
      { decision: undefined, error: { code: 'INVALID_ARGUMENT', message: 'limit: must be > 0', field: 'limit' } },
      { decision: { allowed: false, limit: 2 ** 50, remaining: 0, resetAtMs: 5, retryAfterMs: 1_234.5, waitMs: 0 }, error: undefined },
    ]);
    const read = batch.responseDeserialize(Buffer.from(bytes)) as { results: { decision?: Record<string, unknown>; error?: Record<string, unknown> }[] };
    expect(read.results).toHaveLength(3);
    expect(read.results[0]!.decision).toMatchObject({ allowed: true, limit: 10, remaining: 9, resetAtMs: 1_700_000_000_500.25 });
    expect(read.results[1]!.error).toEqual({ code: 'INVALID_ARGUMENT', message: 'limit: must be > 0', field: 'limit' });
    expect(read.results[2]!.decision).toMatchObject({ allowed: false, limit: 2 ** 50, remaining: 0, retryAfterMs: 1_234.5 });
  });
});
