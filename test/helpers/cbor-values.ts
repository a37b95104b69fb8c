/**
 * Arbitrary values the project's CBOR encoder writes (integers up to the safe range, text, bytes,
 * booleans, null, arrays and maps with integer or text keys), for the property tests of the
 * decoders: `cbor.test.ts` round-trips them, `cbor-direct.test.ts` compares its two paths on them.
 */
import fc from 'fast-check';

export function cborValues(options: { readonly textMaxLength: number; readonly graphemes?: boolean }) {
  return fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      fc.integer(),
      fc.maxSafeInteger(),
      fc.string({ maxLength: options.textMaxLength }),
      // Non-ASCII text: the direct decoder hands it to cbor2.
      ...(options.graphemes === true ? [fc.string({ unit: 'grapheme', maxLength: 8 })] : []),
      fc.uint8Array({ maxLength: 20 }),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('node'), { maxLength: 4 }),
      fc
        .uniqueArray(fc.tuple(fc.oneof(fc.integer(), fc.string({ maxLength: 6 })), tie('node')), {
          maxLength: 4,
          selector: ([key]) => key,
        })
        .map((entries) => new Map(entries)),
    ),
  })).node;
}
