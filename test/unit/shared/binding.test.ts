/**
 * DESIGN.md 4.3: `models` = SHA-384 of the sorted list of (name, digest), and `user_data` = a
 * deterministic CBOR map { v, ohttp, receipts, models }. Every expected byte string below is written
 * out by hand from RFC 8949 (major type 4 array, 3 text string, 2 byte string, 5 map; section 4.2.1
 * key order) and hashed here with node:crypto, never through the code under test.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeUserData, encodeUserData, modelListDigest } from '../../../shared/binding.ts';
import { codeOf } from '../../helpers/codes.ts';

const sha384 = (hex: string): Uint8Array =>
  new Uint8Array(createHash('sha384').update(Buffer.from(hex, 'hex')).digest());
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
/** Hex written in readable groups: the parts joined, spaces dropped. */
const bytes = (...parts: string[]): string => parts.join('').replaceAll(' ', '');

describe('modelListDigest', () => {
  it('the empty list is SHA-384 of 0x80 (an empty CBOR array)', () => {
    expect(hex(modelListDigest([]))).toBe(hex(sha384('80')));
    // The same value from outside Node: `printf '\\x80' | openssl dgst -sha384`.
    expect(hex(modelListDigest([]))).toBe(
      '8db630b3036f40e29aa4c95e3c0156f55a593bf005fc425936d2134a4fc0b855bb4ab4767dd4b0b1dd261cd111598d3d',
    );
  });

  it('two models, served out of order: [["alpha", "0"×96], ["beta", "ab"×48]]', () => {
    const expected = bytes(
      '82', // array of 2 pairs
      `82 65 616c706861 7860 ${'30'.repeat(96)}`, // ["alpha", 96 × "0"]: text(5), text(96)
      `82 64 62657461 7860 ${'6162'.repeat(48)}`, // ["beta", 48 × "ab"]: text(4), text(96)
    );
    const beta = { name: 'beta', sha384: 'ab'.repeat(48) };
    const alpha = { name: 'alpha', sha384: '0'.repeat(96) };
    expect(hex(modelListDigest([beta, alpha]))).toBe(hex(sha384(expected)));
    expect(hex(modelListDigest([alpha, beta]))).toBe(hex(sha384(expected)));
    // `openssl dgst -sha384` over the same bytes written to a file.
    expect(hex(modelListDigest([beta, alpha]))).toBe(
      'd2c260f556af6b3b9dd984c37cd54d63758350c2318ad3cac97f531f404614ad5d5012f07dc3b8454081c4207a0d07bb',
    );
  });

  it('sorts by code unit: uppercase before "_" before lowercase, a prefix before its extensions', () => {
    const names = ['b', 'a-1', 'A', '_', 'a', 'B'];
    // A (41), B (42), _ (5f), a (61), a-1, b (62); each pair is [text(1 or 3) name, text(1) "x"].
    const expected = bytes(
      '86',
      '82 6141 6178',
      '82 6142 6178',
      '82 615f 6178',
      '82 6161 6178',
      '82 63612d31 6178',
      '82 6162 6178',
    );
    const digest = hex(sha384(expected));
    const models = names.map((name) => ({ name, sha384: 'x' }));
    expect(hex(modelListDigest(models))).toBe(digest);
    expect(hex(modelListDigest([...models].reverse()))).toBe(digest);
  });

  it('every permutation of three models gives the same digest', () => {
    const models = [
      { name: 'c', sha384: '1' },
      { name: 'a', sha384: '2' },
      { name: 'b', sha384: '3' },
    ];
    const expected = hex(sha384('83' + '8261616132' + '8261626133' + '8261636131'));
    const permutations = [
      [0, 1, 2],
      [0, 2, 1],
      [1, 0, 2],
      [1, 2, 0],
      [2, 0, 1],
      [2, 1, 0],
    ];
    for (const order of permutations) {
      expect(hex(modelListDigest(order.map((index) => models[index] as (typeof models)[number])))).toBe(
        expected,
      );
    }
  });

  it('binds each digest and name: one changed character changes the result', () => {
    const base = hex(modelListDigest([{ name: 'm', sha384: 'ab'.repeat(48) }]));
    expect(hex(modelListDigest([{ name: 'm', sha384: 'ac' + 'ab'.repeat(47) }]))).not.toBe(base);
    expect(hex(modelListDigest([{ name: 'n', sha384: 'ab'.repeat(48) }]))).not.toBe(base);
    expect(hex(modelListDigest([{ name: 'm', sha384: 'AB'.repeat(48) }]))).not.toBe(base);
  });

  it.each([
    [
      'with different digests',
      [
        { name: 'm', sha384: '1' },
        { name: 'x', sha384: '3' },
        { name: 'm', sha384: '2' },
      ],
    ],
    [
      'identical',
      [
        { name: 'm', sha384: '1' },
        { name: 'm', sha384: '1' },
      ],
    ],
  ])('refuses a list that names a model twice, %s (its digest would depend on order)', (_what, models) => {
    expect(codeOf(() => modelListDigest(models))).toBe('ERR_CLIENT_BINDING_MISMATCH');
  });
});

describe('user_data', () => {
  const receiptKey = '11'.repeat(32);
  const modelsDigest = hex(sha384('80'));
  // The four entries of { "v": 1, "ohttp": h'010203', "models": <48 bytes>, "receipts": <32 bytes> },
  // in encoded-key order (61 76 < 65 6f… < 66 6d… < 68 72…, RFC 8949 section 4.2.1).
  const V = '6176' + '01';
  const O = '656f68747470' + '43' + '010203';
  const M = '666d6f64656c73' + '5830' + modelsDigest;
  const R = '687265636569707473' + '5820' + receiptKey;
  const canonical = 'a4' + V + O + M + R;

  it('is the hand-written deterministic map, and decodes back', () => {
    const bytes = encodeUserData({
      ohttpKeyConfig: new Uint8Array([1, 2, 3]),
      receiptPublicKey: Buffer.from(receiptKey, 'hex'),
      models: [],
    });
    expect(hex(bytes)).toBe(canonical);
    const decoded = decodeUserData(Buffer.from(canonical, 'hex'));
    expect(hex(decoded.ohttpKeyConfig)).toBe('010203');
    expect(hex(decoded.receiptPublicKey)).toBe(receiptKey);
    expect(hex(decoded.modelsDigest)).toBe(modelsDigest);
  });

  it.each([
    ['not CBOR', 'ff'],
    ['an array', '80'],
    ['version 2', 'a4' + '617602' + O + M + R],
    ['three keys', 'a3' + V + O + M],
    ['a duplicate key', 'a4' + V + V + O + M],
    ['keys out of canonical order', 'a4' + O + V + M + R],
    ['a 31-byte receipt key', 'a4' + V + O + M + '687265636569707473' + '581f' + '11'.repeat(31)],
    ['a 47-byte model digest', 'a4' + V + O + '666d6f64656c73' + '582f' + modelsDigest.slice(2) + R],
    ['a text string as key config', 'a4' + V + '656f68747470' + '63' + '010203' + M + R],
    ['a non-shortest length', 'a4' + V + '656f68747470' + '5803' + '010203' + M + R],
    ['a trailing byte', canonical + '00'],
    ['more than 1024 bytes', 'a4' + V + '656f68747470' + '5903e8' + '00'.repeat(1000) + M + R],
  ])('refuses %s with ERR_CLIENT_BINDING_MISMATCH', (_what, bytes) => {
    expect(codeOf(() => decodeUserData(Buffer.from(bytes, 'hex')))).toBe('ERR_CLIENT_BINDING_MISMATCH');
  });

  it('refuses a key config over 512 bytes, and encoding past 1024 bytes is a RangeError', () => {
    const big = encodeUserData({
      ohttpKeyConfig: new Uint8Array(513),
      receiptPublicKey: new Uint8Array(32),
      models: [],
    });
    expect(codeOf(() => decodeUserData(big))).toBe('ERR_CLIENT_BINDING_MISMATCH');
    expect(() =>
      encodeUserData({
        ohttpKeyConfig: new Uint8Array(1000),
        receiptPublicKey: new Uint8Array(32),
        models: [],
      }),
    ).toThrow(RangeError);
  });
});
