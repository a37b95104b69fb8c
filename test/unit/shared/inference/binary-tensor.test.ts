/**
 * The binary tensor data extension's codec: every size a client declares is checked against
 * shape × element size and the body, and lies are typed errors. Expected bytes are written out by
 * hand from Triton's extension document (little-endian, row-major, BOOL one byte, BYTES with u32
 * length prefixes) and IEEE 754 binary16, never produced by the code under test.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  binaryBodyPieces,
  countBytesElements,
  decodeBytesElements,
  encodeBytesElements,
  float16BitsToNumber,
  numberToFloat16Bits,
  sliceBinaryTensors,
  splitBinaryBody,
  typedArrayOf,
} from '../../../../shared/inference/binary-tensor.ts';
import type { BinaryTensorDeclaration } from '../../../../shared/inference/binary-tensor.ts';
import { codeOf } from '../../../helpers/codes.ts';

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

describe('splitBinaryBody', () => {
  const body = hex('7b7d 01020304');
  it('splits at the declared header length', () => {
    const { header, tensors } = splitBinaryBody(body, '2');
    expect(Buffer.from(header).toString()).toBe('{}');
    expect([...tensors]).toEqual([1, 2, 3, 4]);
  });
  it.each([
    ['beyond the body', '7'],
    ['zero', '0'],
    ['negative', '-1'],
    ['with spaces', ' 2'],
    ['in hexadecimal', '0x2'],
    ['with an exponent', '2e0'],
    ['empty', ''],
    ['over the header cap', String(2 * 1024 * 1024)],
  ])('refuses a header length %s', (_, value) => {
    expect(codeOf(() => splitBinaryBody(body, value))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });
});

describe('sliceBinaryTensors', () => {
  const fp32: BinaryTensorDeclaration = { name: 'x', datatype: 'FP32', shape: [1, 2], byteLength: 8 };
  const bool: BinaryTensorDeclaration = { name: 'b', datatype: 'BOOL', shape: [3], byteLength: 3 };
  // 1.0f and -2.0f little-endian, then BOOL true,false,true.
  const section = hex('0000803f 000000c0 010001');

  it('lays the tensors over the section in order and views them in place', () => {
    const [x, b] = sliceBinaryTensors([fp32, bool], section);
    expect([...(typedArrayOf('FP32', x!.bytes) as Float32Array)]).toEqual([1, -2]);
    expect([...(typedArrayOf('BOOL', b!.bytes) as Uint8Array)]).toEqual([1, 0, 1]);
    expect(x!.bytes.buffer).toBe(section.buffer);
  });
  it('refuses a declared size that does not match shape × element size', () => {
    expect(codeOf(() => sliceBinaryTensors([{ ...fp32, byteLength: 4 }, bool], section))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });
  it('refuses a declared size beyond the body', () => {
    expect(codeOf(() => sliceBinaryTensors([fp32, { ...bool, byteLength: 4 }], section))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });
  it('refuses trailing bytes after the declared tensors', () => {
    expect(codeOf(() => sliceBinaryTensors([fp32], section))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });
  it('refuses a negative or fractional size', () => {
    expect(codeOf(() => sliceBinaryTensors([{ ...fp32, byteLength: -8 }], section))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
    expect(codeOf(() => sliceBinaryTensors([{ ...fp32, byteLength: 7.5 }], section))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });
  it('accepts an empty tensor of size zero', () => {
    const empty = sliceBinaryTensors(
      [{ name: 'e', datatype: 'INT64', shape: [0, 4], byteLength: 0 }],
      hex(''),
    );
    expect(empty[0]!.bytes.byteLength).toBe(0);
  });
});

describe('unaligned tensors', () => {
  it('copies a tensor whose offset is not aligned for its element type, and only that one', () => {
    // A 1-byte UINT8 tensor first puts the FP32 tensor at offset 1.
    const section = hex('07 0000803f');
    const [u8, f32] = sliceBinaryTensors(
      [
        { name: 'u', datatype: 'UINT8', shape: [1], byteLength: 1 },
        { name: 'f', datatype: 'FP32', shape: [1], byteLength: 4 },
      ],
      section,
    );
    const small = typedArrayOf('UINT8', u8!.bytes);
    const float = typedArrayOf('FP32', f32!.bytes) as Float32Array;
    expect(small.buffer).toBe(section.buffer);
    expect(float.buffer).not.toBe(section.buffer);
    expect([...float]).toEqual([1]);
  });
  it.each([
    ['INT8', hex('ff'), [-1]],
    ['UINT16', hex('3412'), [0x1234]],
    ['INT16', hex('feff'), [-2]],
    ['UINT32', hex('78563412'), [0x12345678]],
    ['INT32', hex('ffffffff'), [-1]],
    ['UINT64', hex('0100000000000080'), [0x8000000000000001n]],
    ['INT64', hex('feffffffffffffff'), [-2n]],
    ['FP64', hex('000000000000f03f'), [1]],
    ['FP16', hex('003c'), [0x3c00]],
  ] as const)('reads %s little-endian', (datatype, bytes, expected) => {
    expect([...(typedArrayOf(datatype, bytes) as unknown as Iterable<unknown>)]).toEqual(expected);
  });
});

describe('BYTES elements', () => {
  // "ab" and "" and "xyz", each after its u32 little-endian length.
  const blob = hex('02000000 6162 00000000 03000000 78797a');
  it('decodes length-prefixed elements', () => {
    countBytesElements(blob, 3, 't');
    expect(decodeBytesElements(blob).map((element) => Buffer.from(element).toString())).toEqual([
      'ab',
      '',
      'xyz',
    ]);
  });
  it('encodes to the same bytes', () => {
    expect(Buffer.from(encodeBytesElements(['ab', '', 'xyz'])).toString('hex')).toBe(
      Buffer.from(blob).toString('hex'),
    );
  });
  it.each([
    ['an element overrunning the blob', hex('05000000 6162'), 1],
    ['a blob ending inside a length prefix', hex('01000000 61 0200'), 2],
    ['more elements than the shape', blob, 2],
    ['fewer elements than the shape', blob, 4],
  ])('refuses %s', (_, bytes, count) => {
    expect(codeOf(() => countBytesElements(bytes, count, 't'))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });
  it('checks BYTES tensors inside sliceBinaryTensors', () => {
    const declaration: BinaryTensorDeclaration = {
      name: 's',
      datatype: 'BYTES',
      shape: [3],
      byteLength: blob.byteLength,
    };
    expect(sliceBinaryTensors([declaration], blob)).toHaveLength(1);
    expect(codeOf(() => sliceBinaryTensors([{ ...declaration, shape: [2] }], blob))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });
  it('never reads past the blob, whatever the bytes (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(8), (bytes, count) => {
        try {
          countBytesElements(bytes, count, 't');
          const elements = decodeBytesElements(bytes);
          expect(elements).toHaveLength(count);
          expect(elements.reduce((sum, element) => sum + 4 + element.byteLength, 0)).toBe(bytes.byteLength);
        } catch (error) {
          expect(
            codeOf(() => {
              throw error;
            }),
          ).toBe('ERR_INFERENCE_INPUT_INVALID');
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('binary16', () => {
  // Bit patterns from IEEE 754-2008 binary16: sign | 5-bit exponent (bias 15) | 10-bit fraction.
  it.each([
    [0x0000, 0],
    [0x3c00, 1],
    [0xc000, -2],
    [0x3800, 0.5],
    [0x7bff, 65504],
    [0x0400, 2 ** -14],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x3555, 0.333251953125],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])('0x%s is %s', (bits, value) => {
    expect(float16BitsToNumber(bits)).toBe(value);
    expect(numberToFloat16Bits(value)).toBe(bits);
  });
  it('keeps negative zero and NaN', () => {
    expect(numberToFloat16Bits(-0)).toBe(0x8000);
    expect(Object.is(float16BitsToNumber(0x8000), -0)).toBe(true);
    expect(float16BitsToNumber(0x7e00)).toBeNaN();
    expect(
      (numberToFloat16Bits(Number.NaN) & 0x7c00) === 0x7c00 &&
        (numberToFloat16Bits(Number.NaN) & 0x3ff) !== 0,
    ).toBe(true);
  });
  it.each([
    ['0.1 to the nearest', 0.1, 0x2e66],
    ['a tie between 0x3c00 and 0x3c01 to even', 1 + 2 ** -11, 0x3c00],
    ['a tie between 0x3c01 and 0x3c02 to even', 1 + 3 * 2 ** -11, 0x3c02],
    ['just above a tie upwards', 1 + 2 ** -11 + 2 ** -30, 0x3c01],
    ['65519 down to the largest finite', 65519, 0x7bff],
    ['65520 (a tie) up to Infinity', 65520, 0x7c00],
    ['half the smallest subnormal (a tie) to zero', 2 ** -25, 0x0000],
    ['just above half the smallest subnormal up', 2 ** -25 + 2 ** -40, 0x0001],
    ['the largest subnormal rounding into the smallest normal', 2 ** -14 - 2 ** -26, 0x0400],
  ])('rounds %s', (_, value, bits) => {
    expect(numberToFloat16Bits(value)).toBe(bits);
  });
  it('round-trips every non-NaN bit pattern', () => {
    for (let bits = 0; bits <= 0xffff; bits++) {
      const value = float16BitsToNumber(bits);
      if (!Number.isNaN(value)) expect(numberToFloat16Bits(value)).toBe(bits);
    }
  });
});

describe('binaryBodyPieces', () => {
  it('returns the header and blobs as pieces without joining them', () => {
    const blob = hex('0000803f');
    const { pieces, headerLength, byteLength } = binaryBodyPieces({ outputs: [] }, [blob]);
    expect(Buffer.from(pieces[0]!).toString()).toBe('{"outputs":[]}');
    expect(headerLength).toBe(14);
    expect(pieces[1]).toBe(blob);
    expect(byteLength).toBe(18);
  });
});
