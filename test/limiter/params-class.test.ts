import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { copyResolvedParams, newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';
import type { ResolvedParams } from '../../src/limiter/types.js';

// V8's own answer, not a guess from timings: whether two objects share one hidden class.
setFlagsFromString('--allow-natives-syntax');
const sameClass = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

describe('resolved requests keep one hidden class (the decision path is optimised for it)', () => {
  const p = resolveRequest({ key: 'user-1', action: 'login', limit: 10, windowMs: 60_000, algorithm: 'token-bucket', burst: 20 }, newResolvedParams());

  it('copyResolvedParams copies every field, and the copy shares the class of newResolvedParams()', () => {
    const copy = copyResolvedParams(p);
    expect(copy).toStrictEqual(p);
    expect(copy).not.toBe(p);
    expect(sameClass(copy, newResolvedParams())).toBe(true);
    // (Node 20's V8 gives a spread copy, { ...p }, a class of its own — why this exists; later V8s may not.)
  });

  it('cost and global given: the rest copied, the class the same', () => {
    const copy: ResolvedParams = copyResolvedParams(p, 0, true);
    expect(copy).toStrictEqual({ ...p, cost: 0, global: true });
    expect(sameClass(copy, p)).toBe(true);
  });
});
