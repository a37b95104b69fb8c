/**
 * The direct decoder of plain CBOR (issue 11) against the cbor2 path it stands in for: the same
 * value or the same refusal for every input, and a fallback (never a guess) for the forms it
 * leaves to cbor2.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor } from '../../../shared/cbor.ts';
import { DIRECT_UNSUPPORTED, decodeCborDirect } from '../../../shared/cbor-direct.ts';
import { encodeReceiptPayload } from '../../../shared/receipts.ts';
import { codeOf } from '../../helpers/codes.ts';
import { cborValues } from '../../helpers/cbor-values.ts';

const LIMIT = { maxBytes: 1 << 16, maxItems: 1 << 12, maxDecodedBytes: 1 << 24 };
const DIRECT = { ...LIMIT, direct: true };
const hex = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

function sameAsCbor2(bytes: Uint8Array): void {
  let viaCbor2: unknown;
  let viaDirect: unknown;
  const expected = codeOf(() => (viaCbor2 = decodeCbor(bytes, LIMIT)));
  const actual = codeOf(() => (viaDirect = decodeCbor(bytes, DIRECT)));
  expect(actual).toBe(expected);
  expect(viaDirect).toEqual(viaCbor2);
}

describe('decodeCborDirect', () => {
  it.each([
    [
      'a frame header',
      'a3 62 6964 1a 00010000 64 74797065 65 6f68747470 67 7061796c6f6164 64 626f6479',
      true,
    ],
    ['negative integers, nested arrays and maps', 'a2 61 61 82 20 39 ffff 61 62 a1 01 81 f4', true],
    ['byte strings, true, null and undefined', '84 43 010203 f5 f6 f7', true],
    ['a long ASCII text', `78 40 ${'61'.repeat(64)}`, true],
    ['non-shortest heads (18 01, 19 0001, 1a 00000001)', '83 18 01 19 0001 1a 00000001', true],
    ['non-ASCII text', '63 e282ac', false],
    ['invalid UTF-8', '62 c328', false],
    ['a tag', 'c1 00', false],
    ['an indefinite map', 'bf 61 61 01 ff', false],
    ['an indefinite text string', '7f 61 61 ff', false],
    ['a 64-bit integer (a receipt time)', '1b 0000019ad5c0e0a0', true],
    ['the largest safe 64-bit integers, both signs', '82 1b 001fffffffffffff 3b 001fffffffffffff', true],
    ['2^53 (a bigint in cbor2)', '1b 0020000000000000', false],
    ['-2^53 - 1 (a bigint in cbor2)', '3b 0020000000000000', false],
    ['a byte string with a 64-bit length head', '5b 0000000000000002 0102', true],
    ['a simple value other than false/true/null/undefined', 'f0', false],
  ])('%s: same outcome as cbor2 (decoded directly: %s)', (_name, encoded, direct) => {
    const bytes = hex(encoded);
    sameAsCbor2(bytes);
    expect(decodeCborDirect(bytes) !== DIRECT_UNSUPPORTED).toBe(direct);
  });

  it('reads a receipt payload as the enclave writes it directly (the SDK verifies one per response)', () => {
    const payload = encodeReceiptPayload({
      model: 'ppocr-det',
      sha384: 'ab'.repeat(48),
      requestSha256: new Uint8Array(32).fill(1),
      responseSha256: new Uint8Array(32).fill(2),
      time: Date.UTC(2026, 11, 2),
      keyConfigSha256: new Uint8Array(32).fill(3),
    });
    const value = decodeCborDirect(payload);
    expect(value).not.toBe(DIRECT_UNSUPPORTED);
    expect((value as Map<string, unknown>).get('time')).toBe(Date.UTC(2026, 11, 2));
    sameAsCbor2(payload);
  });

  it('hands byte strings on as plain views of the input (no copy, never a Buffer)', () => {
    const bytes = Buffer.from(hex('a1 61 62 43 010203'));
    const value = decodeCbor(bytes, DIRECT) as Map<string, Uint8Array>;
    const view = value.get('b') as Uint8Array;
    expect(Buffer.isBuffer(view)).toBe(false);
    expect(view.buffer).toBe(bytes.buffer);
    expect([...view]).toEqual([1, 2, 3]);
  });

  // The attacks the codec refuses must be refused on the direct path too (it is the one frames use).
  it.each([
    ['`id` twice, byte-identical', 'a2 62 6964 01 62 6964 02', 'ERR_CBOR_DUPLICATE_KEY'],
    [
      '`id` re-encoded with a one-byte length (78 02)',
      'a2 62 6964 01 78 02 6964 02',
      'ERR_CBOR_DUPLICATE_KEY',
    ],
    ['integer key 1 and 1 as a uint16', 'a2 01 40 19 0001 40', 'ERR_CBOR_DUPLICATE_KEY'],
    ['a float id', 'a1 62 6964 f9 3c00', 'ERR_CBOR_FLOAT_REFUSED'],
    ['a byte-string key', 'a1 41 00 01', 'ERR_CBOR_MALFORMED'],
    ['trailing bytes', '82 01 02 ff', 'ERR_CBOR_MALFORMED'],
    ['a string longer than the input', '5a 7f ff ff ff 00', 'ERR_CBOR_MALFORMED'],
  ])('refuses %s with %s, as cbor2 does', (_name, encoded, code) => {
    expect(codeOf(() => decodeCbor(hex(encoded), DIRECT))).toBe(code);
    sameAsCbor2(hex(encoded));
  });

  it('negative control: the same re-encoded key form with a different name passes directly', () => {
    const bytes = hex('a2 62 6964 01 78 02 6963 02');
    expect(decodeCborDirect(bytes)).toEqual(
      new Map([
        ['id', 1],
        ['ic', 2],
      ]),
    );
  });

  it('arbitrary values: the same result on both paths (fast-check)', () => {
    const value = cborValues({ textMaxLength: 40, graphemes: true });
    fc.assert(
      fc.property(value, (input) => sameAsCbor2(encodeCbor(input))),
      { numRuns: 2_000 },
    );
  });

  it('arbitrary bytes: the same value or the same refusal on both paths (fast-check)', () => {
    // Heads of the plain forms are likelier than uniform bytes would make them.
    const byte = fc.oneof(
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom(0x61, 0x62, 0x82, 0xa1, 0xa2, 0x41, 0x18, 0x19, 0xf5),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 48 }), (bytes) => sameAsCbor2(new Uint8Array(bytes))),
      { numRuns: 20_000, interruptAfterTimeLimit: 4_000 },
    );
  });
});
