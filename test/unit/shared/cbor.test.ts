/** The CBOR codec: every form RFC 8949 allows for untrusted input, bounded, with typed errors only. */
import fc from 'fast-check';
import { Tag, decode as decodeUnchecked } from 'cbor2';
import { describe, expect, it } from 'vitest';
import {
  MAX_CBOR_DEPTH,
  decodeCbor,
  encodeCbor,
  encodeDeterministicCbor,
  isTag,
} from '../../../shared/cbor.ts';
import { isNitroInferError } from '../../../shared/errors.ts';
import { codeOf } from '../../helpers/codes.ts';
import { cborValues } from '../../helpers/cbor-values.ts';

const LIMIT = { maxBytes: 4096, maxItems: 1024, maxDecodedBytes: 1 << 20 };
const WIDE = { maxBytes: 1 << 20, maxItems: 1 << 16, maxDecodedBytes: 1 << 26 };
const hex = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('decodeCbor', () => {
  // Encodings written out by hand from RFC 8949 section 3 (and its Appendix A examples).
  it.each([
    [
      'indefinite-length map',
      'bf 61 61 01 61 62 02 ff',
      new Map([
        ['a', 1],
        ['b', 2],
      ]),
    ],
    ['indefinite-length array', '9f 01 82 02 03 ff', [1, [2, 3]]],
    ['indefinite-length byte string', '5f 42 01 02 43 03 04 05 ff', new Uint8Array([1, 2, 3, 4, 5])],
    ['indefinite-length text string', '7f 65 73 74 72 65 61 64 6d 69 6e 67 ff', 'streaming'],
    [
      'integer map keys',
      'a2 01 02 03 04',
      new Map([
        [1, 2],
        [3, 4],
      ]),
    ],
    ['null', 'f6', null],
    ['uint64 timestamp', '1b 00 00 01 91 71 cd 3c 50', 1724191161424],
  ])('accepts an %s', (_name, encoded, expected) => {
    expect(decodeCbor(hex(encoded), LIMIT)).toEqual(expected);
  });

  it('keeps tags as tags, including tag 0 (never turned into a Date)', () => {
    const tagged = decodeCbor(hex('d2 82 01 02'), LIMIT);
    expect(isTag(tagged, 18)).toBe(true);
    expect((tagged as Tag).contents).toEqual([1, 2]);
    const dateTag = decodeCbor(hex('c0 74 32303133 2d30332d 32315432 303a3034 3a30305a'), LIMIT);
    expect(isTag(dateTag, 0)).toBe(true);
    expect(isTag(dateTag, 1)).toBe(false);
  });

  it.each([
    ['trailing bytes', '82 01 02 ff'],
    ['an unterminated indefinite map', 'bf 61 61 01'],
    ['a byte string longer than the input', '5a 7f ff ff ff 00'],
    ['an array longer than the input', '9b ff ff ff ff ff ff ff ff 00'],
    ['a reserved additional-information value', '1c'],
    ['a lone break', 'ff'],
    ['a definite string inside an indefinite one of another type', '5f 61 61 ff'],
    ['no bytes at all', ''],
  ])('refuses %s with ERR_CBOR_MALFORMED', (_name, encoded) => {
    expect(codeOf(() => decodeCbor(hex(encoded), LIMIT))).toBe('ERR_CBOR_MALFORMED');
  });

  // Each pair holds the same key twice in two encodings; RFC 8949 section 5.6 leaves a map with
  // duplicate keys invalid whatever the encoding, and a second `nonce` must never silently win.
  it.each([
    ['a byte-identical text key', 'a2 61 61 01 61 61 02'],
    ['`nonce` shortest, then with a one-byte length (78 05)', 'a2 65 6e6f6e6365 01 78 05 6e6f6e6365 02'],
    ['`nonce` shortest, then as an indefinite text string', 'a2 65 6e6f6e6365 01 7f 63 6e6f6e 62 6365 ff 02'],
    ['integer key 1 and 1 as a uint8 (18 01)', 'a2 01 40 18 01 40'],
    ['integer key 1 and 1 as a uint64 (1b …01)', 'a2 01 40 1b 0000000000000001 40'],
    ['integer key -1 and -1 as a uint16 negative (39 0000)', 'a2 20 40 39 0000 40'],
    ['a PCR index twice inside an indefinite map', 'a1 64 70637273 bf 00 40 19 0000 41 ff ff'],
  ])('refuses %s with ERR_CBOR_DUPLICATE_KEY', (_name, encoded) => {
    expect(codeOf(() => decodeCbor(hex(encoded), LIMIT))).toBe('ERR_CBOR_DUPLICATE_KEY');
  });

  it('negative control: distinct keys pass, and a byte comparison alone lets a re-encoded key win', () => {
    expect(codeOf(() => decodeCbor(hex('a2 65 6e6f6e6365 01 78 04 6e6f6e63 02'), LIMIT))).toBe('accepted');
    // cbor2's own check compares encoded keys: the second `nonce` silently replaces the first.
    const unchecked = decodeUnchecked(hex('a2 65 6e6f6e6365 01 78 05 6e6f6e6365 02'), {
      preferMap: true,
      rejectDuplicateKeys: true,
    }) as Map<string, number>;
    expect([...unchecked]).toEqual([['nonce', 2]]);
  });

  it.each([
    ['a byte string', 'a1 41 00 01'],
    ['an array', 'a1 80 01'],
    ['a tag', 'a1 c1 00 01'],
    ['true', 'a1 f5 01'],
    ['null', 'a1 f6 01'],
  ])('refuses %s as a map key with ERR_CBOR_MALFORMED', (_name, encoded) => {
    expect(codeOf(() => decodeCbor(hex(encoded), LIMIT))).toBe('ERR_CBOR_MALFORMED');
  });

  it.each([
    ['1.0 as a half float', 'f9 3c00'],
    ['1.0 as a single float', 'fa 3f800000'],
    ['1.0 as a double', 'fb 3ff0000000000000'],
    ['NaN', 'f9 7e00'],
    ['-0.0', 'f9 8000'],
    ['a float map key (PCR index 0.0)', 'a1 f9 0000 40'],
    ['a float timestamp inside a map', 'a1 69 74696d657374616d70 fb 4278f1a3cd3c5000'],
    ['a float inside a tag', 'c1 fb 41d9e3a3cd3c5000'],
  ])('refuses %s with ERR_CBOR_FLOAT_REFUSED', (_name, encoded) => {
    expect(codeOf(() => decodeCbor(hex(encoded), LIMIT))).toBe('ERR_CBOR_FLOAT_REFUSED');
  });

  it('negative control: without the refusal a float 1.0 is indistinguishable from the integer 1', () => {
    expect(decodeUnchecked(hex('f9 3c00'))).toBe(1);
    expect(decodeCbor(hex('01'), LIMIT)).toBe(1);
  });

  it('keeps big and negative integer forms distinguishable for callers to refuse', () => {
    // Tag 2 (bignum) stays a Tag, never a number; 65-bit values arrive as bigint; negatives as negatives.
    expect(isTag(decodeCbor(hex('c2 41 01'), LIMIT), 2)).toBe(true);
    expect(decodeCbor(hex('1b ffffffffffffffff'), LIMIT)).toBe(0xffff_ffff_ffff_ffffn);
    expect(decodeCbor(hex('3b ffffffffffffffff'), LIMIT)).toBe(-0x1_0000_0000_0000_0000n);
    expect(decodeCbor(hex('20'), LIMIT)).toBe(-1);
  });

  it('refuses nesting deeper than the bound', () => {
    const deep = new Uint8Array([...new Array(MAX_CBOR_DEPTH + 1).fill(0x81), 0x01]);
    expect(codeOf(() => decodeCbor(deep, LIMIT))).toBe('ERR_CBOR_MALFORMED');
    const shallow = new Uint8Array([...new Array(MAX_CBOR_DEPTH).fill(0x81), 0x01]);
    expect(codeOf(() => decodeCbor(shallow, LIMIT))).toBe('accepted');
  });

  it('refuses input over the byte bound before reading it', () => {
    expect(codeOf(() => decodeCbor(new Uint8Array(4097), LIMIT))).toBe('ERR_CBOR_TOO_LARGE');
  });

  it('never quotes decoded content in its messages', () => {
    try {
      decodeCbor(hex('a2 66 736563726574 01 66 736563726574 02'), LIMIT); // duplicate key "secret"
      expect.unreachable();
    } catch (error) {
      expect(String((error as Error).message)).not.toContain('secret');
      expect(String((error as Error).message)).not.toContain('736563726574');
    }
  });

  it('arbitrary bytes decode or fail with a typed error, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        try {
          decodeCbor(bytes, LIMIT);
        } catch (error) {
          return isNitroInferError(error);
        }
        return true;
      }),
      { numRuns: 20_000, interruptAfterTimeLimit: 3_000 },
    );
  });

  it('encode → decode → encode gives identical bytes', () => {
    const value = cborValues({ textMaxLength: 20 });
    fc.assert(
      fc.property(value, (input) => {
        const once = encodeCbor(input);
        const twice = encodeCbor(decodeCbor(once, WIDE));
        expect(toHex(twice)).toBe(toHex(once));
      }),
      { numRuns: 2_000 },
    );
  });

  it('every strict prefix of a valid encoding is refused', () => {
    const encoded = encodeCbor(
      new Map<string, unknown>([
        ['pcrs', new Map([[0, new Uint8Array(48)]])],
        ['n', [1, 'two']],
      ]),
    );
    for (let length = 0; length < encoded.byteLength; length++) {
      expect(codeOf(() => decodeCbor(encoded.subarray(0, length), LIMIT))).toBe('ERR_CBOR_MALFORMED');
    }
  });
});

describe('decodeCbor bounds on items and decoded size', () => {
  // The frame of issue 10: an array (9a = 4-byte count) of ~33 million empty maps (a0), 33 MB.
  const EMPTY_MAPS = 33_000_000;
  const hostile = Buffer.alloc(5 + EMPTY_MAPS, 0xa0);
  hostile[0] = 0x9a;
  hostile.writeUInt32BE(EMPTY_MAPS, 1);
  const frameLike = { maxBytes: 64 * 1024 * 1024, maxItems: 65_536, maxDecodedBytes: 32 * 1024 * 1024 };

  it('refuses 33 million empty maps with ERR_CBOR_LIMIT_EXCEEDED before decoding any', () => {
    expect(codeOf(() => decodeCbor(hostile, frameLike))).toBe('ERR_CBOR_LIMIT_EXCEEDED');
    // Without an item bound the decoded-size bound still stops it: 400 bytes estimated per map.
    expect(codeOf(() => decodeCbor(hostile, { ...frameLike, maxItems: Number.MAX_SAFE_INTEGER }))).toBe(
      'ERR_CBOR_LIMIT_EXCEEDED',
    );
  });

  it('negative control: the same shape within the bounds decodes, one item over does not', () => {
    const small = Buffer.from([0x99, 0x03, 0xe8, ...new Array(1000).fill(0xa0)]); // 1000 empty maps
    expect((decodeCbor(small, { ...frameLike, maxItems: 1001 }) as unknown[]).length).toBe(1000);
    expect(codeOf(() => decodeCbor(small, { ...frameLike, maxItems: 1000 }))).toBe('ERR_CBOR_LIMIT_EXCEEDED');
  });

  it('counts every item: integers, strings, chunks, tags, keys and values', () => {
    // {1: [h'00', "a"], 2: c1(5)} = map, 1, array, h'00', "a", 2, tag, 5 = 8 items
    const encoded = hex('a2 01 82 41 00 61 61 02 c1 05');
    expect(codeOf(() => decodeCbor(encoded, { ...LIMIT, maxItems: 8 }))).toBe('accepted');
    expect(codeOf(() => decodeCbor(encoded, { ...LIMIT, maxItems: 7 }))).toBe('ERR_CBOR_LIMIT_EXCEEDED');
    // An indefinite byte string of three chunks is four items.
    const chunked = hex('5f 41 01 41 02 41 03 ff');
    expect(codeOf(() => decodeCbor(chunked, { ...LIMIT, maxItems: 4 }))).toBe('accepted');
    expect(codeOf(() => decodeCbor(chunked, { ...LIMIT, maxItems: 3 }))).toBe('ERR_CBOR_LIMIT_EXCEEDED');
  });

  it('bounds the decoded size of text: up to 2 bytes per UTF-8 byte', () => {
    const text = encodeCbor('x'.repeat(3000));
    expect(codeOf(() => decodeCbor(text, { ...LIMIT, maxDecodedBytes: 6000 }))).toBe(
      'ERR_CBOR_LIMIT_EXCEEDED',
    );
    expect(codeOf(() => decodeCbor(text, { ...LIMIT, maxDecodedBytes: 8192 }))).toBe('accepted');
  });

  it('refuses a declared count the input cannot hold before reading on', () => {
    expect(codeOf(() => decodeCbor(hex('9a ffffffff 00'), WIDE))).toBe('ERR_CBOR_MALFORMED');
    expect(codeOf(() => decodeCbor(hex('ba 80000000 00 00'), WIDE))).toBe('ERR_CBOR_MALFORMED');
    expect(codeOf(() => decodeCbor(hex('9f 9f 9f'), WIDE))).toBe('ERR_CBOR_MALFORMED');
  });

  it('the item count matches the items of the decoded value (fast-check)', () => {
    const countItems = (value: unknown): number => {
      if (Array.isArray(value)) return 1 + value.reduce((sum: number, entry) => sum + countItems(entry), 0);
      if (value instanceof Map) {
        let sum = 1;
        for (const [key, entry] of value) sum += countItems(key) + countItems(entry);
        return sum;
      }
      return 1;
    };
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc.integer(),
        fc.string({ maxLength: 8 }),
        fc.uint8Array({ maxLength: 8 }),
        fc.array(tie('node'), { maxLength: 4 }),
        fc
          .uniqueArray(fc.tuple(fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), tie('node')), {
            maxLength: 3,
            selector: ([key]) => key,
          })
          .map((entries) => new Map(entries)),
      ),
    })).node;
    fc.assert(
      fc.property(value, (input) => {
        const encoded = encodeCbor(input);
        const items = countItems(input);
        expect(codeOf(() => decodeCbor(encoded, { ...WIDE, maxItems: items }))).toBe('accepted');
        expect(codeOf(() => decodeCbor(encoded, { ...WIDE, maxItems: items - 1 }))).toBe(
          'ERR_CBOR_LIMIT_EXCEEDED',
        );
      }),
      { numRuns: 500 },
    );
  });
});

describe('encodeCbor', () => {
  it.each([
    // RFC 8949 Appendix A: 4294967296 = 1b 0000000100000000, -4294967297 = 3b 0000000100000000.
    [2 ** 32, '1b0000000100000000'],
    [-(2 ** 32) - 1, '3b0000000100000000'],
    [0xffff_ffff, '1affffffff'],
    [1_724_191_161_424, '1b0000019171cd3c50'],
  ])(
    'writes the integer %d as an integer, never a float (cbor-x alone writes a float64)',
    (value, expected) => {
      expect(toHex(encodeCbor(value))).toBe(expected);
      expect(toHex(encodeCbor(new Map([['t', [value]]])))).toBe(`a16174 81${expected}`.replace(/ /g, ''));
      expect(decodeCbor(encodeCbor(value), LIMIT)).toBe(value);
    },
  );

  it('refuses to write a float, as the decoder refuses to read one', () => {
    expect(codeOf(() => encodeCbor({ load: 0.5 }))).toBe('ERR_CBOR_FLOAT_REFUSED');
    expect(codeOf(() => encodeCbor(Number.NaN))).toBe('ERR_CBOR_FLOAT_REFUSED');
    expect(codeOf(() => encodeDeterministicCbor(new Map([['x', 1.5]])))).toBe('ERR_CBOR_FLOAT_REFUSED');
  });
});

describe('encodeDeterministicCbor', () => {
  it('sorts map keys by their encoded bytes whatever the insertion order (RFC 8949 4.2.1)', () => {
    // Keys encode as 61 76 ("v"), 65 6f68747470 ("ohttp"), 66 6d6f64656c73 ("models"): shorter first.
    const expected = 'a3 6176 01 656f68747470 4101 666d6f64656c73 4102'.replace(/ /g, '');
    const a = new Map<string, unknown>([
      ['models', new Uint8Array([2])],
      ['v', 1],
      ['ohttp', new Uint8Array([1])],
    ]);
    const b = new Map<string, unknown>([
      ['ohttp', new Uint8Array([1])],
      ['v', 1],
      ['models', new Uint8Array([2])],
    ]);
    expect(toHex(encodeDeterministicCbor(a))).toBe(expected);
    expect(toHex(encodeDeterministicCbor(b))).toBe(expected);
  });

  it('uses the shortest integer forms', () => {
    expect(toHex(encodeDeterministicCbor([23, 24, 255, 256, 65536, -1, -25]))).toBe(
      '87171818 18ff 190100 1a00010000 20 3818'.replace(/ /g, ''),
    );
  });
});

describe('Buffers', () => {
  it('encodes a Node Buffer as a byte string, like any Uint8Array, and decodes to plain Uint8Array', () => {
    const buffer = Buffer.from([1, 2, 3]);
    expect(toHex(encodeCbor(buffer))).toBe('43010203');
    expect(toHex(encodeCbor(new Map([['b', [buffer]]])))).toBe('a16162814301020' + '3');
    const decoded = decodeCbor(Buffer.from('43010203', 'hex'), LIMIT) as Uint8Array;
    expect(Buffer.isBuffer(decoded)).toBe(false);
    expect(decoded).toEqual(new Uint8Array([1, 2, 3]));
  });
});
