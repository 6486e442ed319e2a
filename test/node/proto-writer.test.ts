import fc from 'fast-check';
import protobuf from 'protobufjs/minimal.js';
import { describe, expect, it } from 'vitest';
import { ProtoWriter } from '../../src/node/api/proto-writer.js';

/** The hand-written writer against protobufjs's general one: the same bytes for every value. */
type Field = { kind: 'uint'; v: number } | { kind: 'int64'; v: number } | { kind: 'double'; v: number } | { kind: 'string'; v: string } | { kind: 'bool'; v: boolean } | { kind: 'nested'; fields: Field[] };

const leaf: fc.Arbitrary<Field> = fc.oneof(
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }).map((v) => ({ kind: 'uint' as const, v })),
  fc.oneof(fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(-1, 0, 1, 127, 128, 2 ** 31, -(2 ** 31), 2 ** 32)).map((v) => ({ kind: 'int64' as const, v })),
  fc.double().map((v) => ({ kind: 'double' as const, v })),
  fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 300 })).map((v) => ({ kind: 'string' as const, v })),
  fc.boolean().map((v) => ({ kind: 'bool' as const, v })),
);
const field: fc.Arbitrary<Field> = fc.letrec<{ f: Field }>((tie) => ({
  f: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('f'), { maxLength: 40 }).map((fields) => ({ kind: 'nested' as const, fields }))),
})).f;

function writeOurs(w: ProtoWriter, fields: Field[]): void {
  for (const f of fields) {
    if (f.kind === 'uint') w.uint(f.v);
    else if (f.kind === 'int64') w.int64(f.v);
    else if (f.kind === 'double') w.double(f.v);
    else if (f.kind === 'string') w.string(f.v);
    else if (f.kind === 'bool') w.bool(f.v);
    else {
      const start = w.beginMessage();
      writeOurs(w, f.fields);
      w.endMessage(start);
    }
  }
}

function writeTheirs(w: protobuf.Writer, fields: Field[]): void {
  for (const f of fields) {
    if (f.kind === 'uint') w.uint64(f.v);
    else if (f.kind === 'int64') w.int64(f.v);
    else if (f.kind === 'double') w.double(f.v);
    else if (f.kind === 'string') w.string(f.v);
    else if (f.kind === 'bool') w.bool(f.v);
    else {
      w.fork();
      writeTheirs(w, f.fields);
      w.ldelim();
    }
  }
}

describe('ProtoWriter', () => {
  it('writes the same bytes as protobufjs for any nesting of fields', () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 30 }), fc.integer({ min: 1, max: 256 }), (fields, initial) => {
        const ours = new ProtoWriter(initial);
        writeOurs(ours, fields);
        const theirs = protobuf.Writer.create();
        writeTheirs(theirs, fields);
        expect(Buffer.from(ours.finish()).equals(Buffer.from(theirs.finish()))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('a nested message past 128 and 16,384 bytes gets its longer length in place', () => {
    for (const size of [127, 128, 16_383, 16_384, 300_000]) {
      const ours = new ProtoWriter(8);
      const start = ours.beginMessage();
      ours.string('x'.repeat(size));
      ours.endMessage(start);
      const theirs = protobuf.Writer.create();
      theirs.fork().string('x'.repeat(size)).ldelim();
      expect(Buffer.from(ours.finish()).equals(Buffer.from(theirs.finish()))).toBe(true);
    }
  });
});
