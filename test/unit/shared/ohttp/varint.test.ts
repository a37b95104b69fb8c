/**
 * QUIC varints (RFC 9000 section 16) read from Binary HTTP messages after decryption: the
 * RFC 9000 Appendix A.1 examples, every length form, and bounds.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { paddedLength } from '../../../../shared/ohttp/padding.ts';
import { ByteReader, encodeVarint } from '../../../../shared/ohttp/varint.ts';
import { codeOf } from '../../../helpers/codes.ts';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('varints', () => {
  // RFC 9000 Appendix A.1 (and its 2-byte example of 37 in a non-shortest form).
  it.each<[string, number]>([
    ['9d7f3e7d', 494_878_333],
    ['7bbd', 15_293],
    ['25', 37],
    ['4025', 37],
  ])('%s reads as %d', (bytes, value) => {
    const reader = new ByteReader(hex(bytes));
    expect(reader.varint()).toBe(value);
    expect(reader.remaining).toBe(0);
  });

  it('refuses the 8-byte RFC example c2197c5eff14e88c (151,288,809,941,952,652 > 2^53) instead of rounding', () => {
    expect(codeOf(() => new ByteReader(hex('c2197c5eff14e88c')).varint())).toBe('ERR_BHTTP_MALFORMED');
  });

  it.each<[number, string]>([
    [0, '00'],
    [63, '3f'],
    [64, '4040'],
    [16_383, '7fff'],
    [16_384, '80004000'],
    [1_073_741_823, 'bfffffff'],
    [1_073_741_824, 'c000000040000000'],
    [Number.MAX_SAFE_INTEGER, 'c01fffffffffffff'],
  ])('%d encodes shortest as %s, and reads back', (value, bytes) => {
    expect(toHex(encodeVarint(value))).toBe(bytes);
    expect(new ByteReader(hex(bytes)).varint()).toBe(value);
  });

  it('encoding refuses negative, fractional and unsafe values', () => {
    for (const value of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN]) {
      expect(() => encodeVarint(value)).toThrow(RangeError);
    }
  });

  it('every truncated prefix of every length form is refused', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (value) => {
        const bytes = encodeVarint(value);
        expect(new ByteReader(bytes).varint()).toBe(value);
        for (let end = 0; end < bytes.byteLength; end += 1) {
          expect(codeOf(() => new ByteReader(bytes.subarray(0, end)).varint())).toBe('ERR_BHTTP_MALFORMED');
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it('bytes, lengthPrefixed and peekByte stay inside the buffer', () => {
    const reader = new ByteReader(hex('03aabbcc02dd'));
    expect(reader.peekByte()).toBe(3);
    expect(toHex(reader.lengthPrefixed(3))).toBe('aabbcc');
    expect(codeOf(() => reader.lengthPrefixed(1))).toBe('ERR_BHTTP_MALFORMED'); // 2 > max 1
    reader.offset = 4;
    expect(codeOf(() => reader.lengthPrefixed(8))).toBe('ERR_BHTTP_MALFORMED'); // 2 bytes declared, 1 left
    expect(codeOf(() => new ByteReader(hex('aa')).bytes(2))).toBe('ERR_BHTTP_MALFORMED');
    expect(new ByteReader(new Uint8Array(0)).peekByte()).toBeUndefined();
  });
});

describe('response padding buckets (DESIGN.md 4.2)', () => {
  it.each<[number, number]>([
    [0, 1024],
    [1024, 1024],
    [1025, 2048],
    [40_000, 65_536],
    [65_536, 65_536],
    [65_537, 131_072],
    [200_000, 262_144],
  ])('%d bytes pad to %d', (length, padded) => {
    expect(paddedLength(length)).toBe(padded);
  });
});
