/**
 * Open Inference Protocol v2 requests are plaintext from an untrusted client, parsed inside the
 * enclave: every datatype, shape and size rule, and prototype keys as datatype, tensor name and
 * object key, each asserting the typed code. Expected typed arrays are written out by hand.
 */
import { describe, expect, it } from 'vitest';
import { MAX_INPUTS, MAX_TENSOR_ELEMENTS, parseInferenceRequest } from '../../../../shared/inference/v2.ts';
import { fromFlatTensor, tensorMetadata, toFlatTensors } from '../../../../shared/inference/v2-tensors.ts';
import type { V2Datatype, V2ModelMetadata } from '../../../../shared/inference/v2.ts';
import { codeOf } from '../../../helpers/codes.ts';

const PROTOTYPE_KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];

/** A one-input request in the form a client sends. */
function request(datatype: string, shape: unknown, data: unknown, name = 'x'): unknown {
  return { inputs: [{ name, datatype, shape, data }] };
}

/** A model taking one input `name` of `datatype` and `shape`, with one output `y`. */
function model(datatype: V2Datatype, shape: number[], name = 'x'): V2ModelMetadata {
  return {
    name: 'm',
    platform: 'onnx_onnxv1',
    inputs: [{ name, datatype, shape }],
    outputs: [{ name: 'y', datatype, shape }],
  };
}

/** Parses and converts a one-input request; the code, or the flat tensor. */
function flatten(datatype: V2Datatype, data: unknown[]) {
  const parsed = parseInferenceRequest(request(datatype, [data.length], data));
  return toFlatTensors(parsed, model(datatype, [data.length]))[0];
}

describe('parseInferenceRequest + toFlatTensors: every datatype', () => {
  // [datatype, ONNX type, values in JSON, the typed array ONNX Runtime must receive]
  it.each<[V2Datatype, string, unknown[], ArrayBufferView]>([
    ['BOOL', 'bool', [true, false, true], new Uint8Array([1, 0, 1])],
    ['UINT8', 'uint8', [0, 255], new Uint8Array([0, 255])],
    ['INT8', 'int8', [-128, 127], new Int8Array([-128, 127])],
    ['UINT16', 'uint16', [0, 65535], new Uint16Array([0, 65535])],
    ['INT16', 'int16', [-32768, 32767], new Int16Array([-32768, 32767])],
    ['UINT32', 'uint32', [0, 4294967295], new Uint32Array([0, 4294967295])],
    ['INT32', 'int32', [-2147483648, 2147483647], new Int32Array([-2147483648, 2147483647])],
    ['UINT64', 'uint64', [0, 9007199254740991], new BigUint64Array([0n, 9007199254740991n])],
    ['INT64', 'int64', [-9007199254740991, 7], new BigInt64Array([-9007199254740991n, 7n])],
    ['FP32', 'float32', [1.5, -0.25, 0], new Float32Array([1.5, -0.25, 0])],
    ['FP64', 'float64', [0.1, -1e300], new Float64Array([0.1, -1e300])],
  ])('%s becomes %s', (datatype, onnxType, values, expected) => {
    const tensor = flatten(datatype, values);
    expect(tensor?.type).toBe(onnxType);
    expect(tensor?.dims).toEqual([values.length]);
    expect(tensor?.data.constructor).toBe(expected.constructor);
    expect(tensor?.data).toEqual(expected);
  });

  it.each<[V2Datatype, unknown]>([
    ['UINT8', 256],
    ['UINT8', -1],
    ['INT8', 128],
    ['INT8', -129],
    ['UINT16', 65536],
    ['INT16', -32769],
    ['UINT32', 4294967296],
    ['INT32', 2147483648],
    ['INT32', 1.5],
    ['UINT64', -1],
    ['UINT64', 18446744073709551616], // 2^64: wraps to 0 in a BigUint64Array
    ['INT64', 9223372036854775808], // 2^63: wraps to -2^63 in a BigInt64Array
    ['INT64', -9223372036854777856], // below -2^63
    ['INT64', 0.5],
    ['BOOL', 1],
    ['BOOL', 'true'],
    ['FP32', '1'],
    ['FP32', null],
    ['FP64', Number.NaN],
    ['FP64', Number.POSITIVE_INFINITY],
  ])('%s refuses %s', (datatype, value) => {
    expect(codeOf(() => flatten(datatype, [value]))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });

  it('the largest values of INT64 and UINT64 a double holds are accepted, exactly', () => {
    // 2^63 - 1024 and 2^64 - 2048: the largest doubles below 2^63 and 2^64.
    expect(flatten('INT64', [9223372036854774784])?.data).toEqual(new BigInt64Array([9223372036854774784n]));
    expect(flatten('UINT64', [18446744073709549568])?.data).toEqual(
      new BigUint64Array([18446744073709549568n]),
    );
  });
});

describe('shapes and sizes', () => {
  it.each<[string, unknown, unknown]>([
    ['fewer elements than the shape', [2, 2], [1, 2, 3]],
    ['more elements than the shape', [3], [1, 2, 3, 4]],
    ['a negative dimension', [-1], []],
    ['a fractional dimension', [1.5], [1]],
    ['a string dimension', ['2'], [1, 2]],
    ['a shape that is not an array', 2, [1, 2]],
    ['rank 9', [1, 1, 1, 1, 1, 1, 1, 1, 1], [1]],
    ['nested data that is ragged but has the right count', [2, 2], [[1, 2, 3], [4]]],
    ['nested data mixed with scalars', [2, 2], [[1, 2], 3, 4]],
    ['nested data deeper than the shape', [1, 1], [[[1]]]],
    ['nested data shallower than the shape', [2, 1, 1], [[1], [2]]],
    ['data that is not an array', [1], 1],
  ])('refuses %s', (_what, shape, data) => {
    expect(codeOf(() => parseInferenceRequest(request('FP32', shape, data)))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });

  it('refuses more than MAX_TENSOR_ELEMENTS by the shape alone, before reading data', () => {
    // 65536 × 1025 = 67,174,400 > 64 Mi = 67,108,864.
    expect(MAX_TENSOR_ELEMENTS).toBe(67_108_864);
    expect(codeOf(() => parseInferenceRequest(request('FP32', [65536, 1025], [])))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });

  it('accepts nested data of exactly the shape, row-major, and empty tensors', () => {
    const parsed = parseInferenceRequest(
      request(
        'INT32',
        [2, 3],
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
      ),
    );
    expect(parsed.inputs[0]?.data).toEqual([1, 2, 3, 4, 5, 6]);
    expect(parseInferenceRequest(request('FP32', [2, 0], [[], []])).inputs[0]?.data).toEqual([]);
    expect(parseInferenceRequest(request('FP32', [0, 5], [])).inputs[0]?.data).toEqual([]);
    expect(parseInferenceRequest(request('FP32', [], [7])).inputs[0]?.data).toEqual([7]);
  });

  it.each<[string, V2ModelMetadata, unknown]>([
    ['a datatype other than declared', model('FP32', [2]), request('FP64', [2], [1, 2])],
    ['another rank', model('FP32', [2]), request('FP32', [1, 2], [1, 2])],
    ['a fixed dimension of another size', model('FP32', [1, 3]), request('FP32', [1, 2], [1, 2])],
    ['an input the model does not take', model('FP32', [2]), request('FP32', [2], [1, 2], 'z')],
    [
      'another number of inputs',
      model('FP32', [1]),
      {
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [1], data: [1] },
          { name: 'w', datatype: 'FP32', shape: [1], data: [1] },
        ],
      },
    ],
    [
      'an output the model does not have',
      model('FP32', [1]),
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }], outputs: [{ name: 'z' }] },
    ],
  ])('toFlatTensors refuses %s', (_what, metadata, body) => {
    expect(codeOf(() => toFlatTensors(parseInferenceRequest(body), metadata))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });

  it('a dynamic dimension (-1) takes any size', () => {
    const parsed = parseInferenceRequest(request('FP32', [3, 1], [1, 2, 3]));
    expect(toFlatTensors(parsed, model('FP32', [-1, 1]))[0]?.dims).toEqual([3, 1]);
  });
});

describe('request fields', () => {
  const input = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };
  it.each<[string, unknown]>([
    ['null', null],
    ['an array', [input]],
    ['a string', 'inputs'],
    ['no inputs', {}],
    ['empty inputs', { inputs: [] }],
    [
      'too many inputs',
      { inputs: Array.from({ length: MAX_INPUTS + 1 }, (_, i) => ({ ...input, name: `x${i}` })) },
    ],
    ['duplicate input names', { inputs: [input, input] }],
    ['an input that is not an object', { inputs: [[1]] }],
    ['an empty input name', { inputs: [{ ...input, name: '' }] }],
    ['an input name of 257 characters', { inputs: [{ ...input, name: 'n'.repeat(257) }] }],
    ['a numeric name', { inputs: [{ ...input, name: 1 }] }],
    ['an unknown field', { inputs: [input], extra: 1 }],
    ['a numeric id', { inputs: [input], id: 1 }],
    ['an id of 257 characters', { inputs: [input], id: 'i'.repeat(257) }],
    ['parameters that are an array', { inputs: [input], parameters: [] }],
    ['tensor parameters that are a string', { inputs: [{ ...input, parameters: 'p' }] }],
    ['outputs that are an object', { inputs: [input], outputs: { name: 'y' } }],
    [
      'too many outputs',
      { inputs: [input], outputs: Array.from({ length: MAX_INPUTS + 1 }, () => ({ name: 'y' })) },
    ],
    ['an output without a name', { inputs: [input], outputs: [{}] }],
    ['an output with an empty name', { inputs: [input], outputs: [{ name: '' }] }],
  ])('refuses %s', (_what, body) => {
    expect(codeOf(() => parseInferenceRequest(body))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });

  it('keeps id, parameters and outputs (with their parameters: binary_data asks for binary), and nothing else', () => {
    const body = {
      id: 'r1',
      parameters: { p: 1 },
      inputs: [{ ...input, parameters: { q: 2 } }],
      outputs: [{ name: 'y', parameters: { binary_data: false } }],
    };
    expect(parseInferenceRequest(body)).toEqual({
      id: 'r1',
      parameters: { p: 1 },
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1], parameters: { q: 2 } }],
      outputs: [{ name: 'y', parameters: { binary_data: false } }],
    });
  });
});

describe('prototype keys', () => {
  it.each(PROTOTYPE_KEYS)('%s is not a datatype', (key) => {
    expect(codeOf(() => parseInferenceRequest(request(key, [1], [1])))).toBe('ERR_INFERENCE_INPUT_INVALID');
    // The same key arriving through JSON.parse, where "__proto__" becomes an own property.
    const body: unknown = JSON.parse(
      `{"inputs":[{"name":"x","datatype":${JSON.stringify(key)},"shape":[1],"data":[1]}]}`,
    );
    expect(codeOf(() => parseInferenceRequest(body))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });

  it.each(PROTOTYPE_KEYS)('%s works as a tensor name only where the model declares it', (key) => {
    const parsed = parseInferenceRequest(request('FP32', [1], [2], key));
    expect(parsed.inputs[0]?.name).toBe(key);
    expect(toFlatTensors(parsed, model('FP32', [1], key))[0]?.data).toEqual(new Float32Array([2]));
    expect(codeOf(() => toFlatTensors(parsed, model('FP32', [1])))).toBe('ERR_INFERENCE_INPUT_INVALID');
    const asked = parseInferenceRequest({ inputs: parsed.inputs, outputs: [{ name: key }] });
    expect(codeOf(() => toFlatTensors(asked, model('FP32', [1])))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });

  it.each(PROTOTYPE_KEYS)('%s as a request key is an unknown field', (key) => {
    const body: unknown = JSON.parse(
      `{${JSON.stringify(key)}:{"inputs":[]},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`,
    );
    expect(codeOf(() => parseInferenceRequest(body))).toBe('ERR_INFERENCE_INPUT_INVALID');
  });

  it('a tensor\'s own "__proto__" key neither supplies fields nor pollutes', () => {
    const missing: unknown = JSON.parse(
      '{"inputs":[{"name":"x","shape":[1],"data":[1],"__proto__":{"datatype":"FP32"}}]}',
    );
    expect(codeOf(() => parseInferenceRequest(missing))).toBe('ERR_INFERENCE_INPUT_INVALID');
    const withParameters: unknown = JSON.parse(
      '{"parameters":{"__proto__":{"polluted":1}},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"__proto__":{"polluted":1}}]}',
    );
    const parsed = parseInferenceRequest(withParameters);
    expect(Object.getPrototypeOf(parsed.inputs[0])).toBe(Object.prototype);
    expect(Object.keys(parsed.inputs[0] ?? {})).toEqual(['name', 'shape', 'datatype', 'data']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('outputs back to V2 JSON', () => {
  it.each<[string, ArrayBufferView, V2Datatype, unknown[]]>([
    ['float32', new Float32Array([1.5, -2]), 'FP32', [1.5, -2]],
    ['bool', new Uint8Array([1, 0]), 'BOOL', [true, false]],
    ['int64', new BigInt64Array([-9007199254740991n, 3n]), 'INT64', [-9007199254740991, 3]],
    ['uint8', new Uint8Array([255]), 'UINT8', [255]],
  ])('fromFlatTensor maps %s', (type, data, datatype, values) => {
    expect(fromFlatTensor({ name: 'y', type: type as never, dims: [values.length], data })).toEqual({
      name: 'y',
      datatype,
      shape: [values.length],
      data: values,
    });
  });

  it('refuses integers beyond JSON exact range and unknown types with ERR_INFERENCE_FAILED', () => {
    const big = {
      name: 'y',
      type: 'int64' as const,
      dims: [1],
      data: new BigInt64Array([9007199254740992n]),
    };
    expect(codeOf(() => fromFlatTensor(big))).toBe('ERR_INFERENCE_FAILED');
    const negative = { ...big, data: new BigInt64Array([-9007199254740992n]) };
    expect(codeOf(() => fromFlatTensor(negative))).toBe('ERR_INFERENCE_FAILED');
    const unknown = { name: 'y', type: 'complex64' as never, dims: [1], data: new Uint8Array(1) };
    expect(codeOf(() => fromFlatTensor(unknown))).toBe('ERR_INFERENCE_FAILED');
  });

  it('tensorMetadata turns symbolic and negative dimensions into -1 and refuses unknown types', () => {
    expect(tensorMetadata('x', 'float32', ['batch', 3, -1])).toEqual({
      name: 'x',
      datatype: 'FP32',
      shape: [-1, 3, -1],
    });
    expect(codeOf(() => tensorMetadata('x', 'complex64', [1]))).toBe('ERR_INFERENCE_FAILED');
    expect(codeOf(() => tensorMetadata('x', 'constructor', [1]))).toBe('ERR_INFERENCE_FAILED');
  });
});
