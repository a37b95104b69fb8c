/**
 * fast-check over V2 requests (STYLE.md 6): generated valid requests are accepted and become the
 * typed arrays a hand-written table names; arbitrary JSON, and requests with arbitrary parts
 * (prototype keys included), are refused only with our typed errors. Seeds print on failure.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isNitroInferError } from '../../../../shared/errors.ts';
import { parseInferenceRequest } from '../../../../shared/inference/v2.ts';
import { float16BitsToNumber } from '../../../../shared/inference/binary-tensor.ts';
import { toFlatTensors } from '../../../../shared/inference/v2-tensors.ts';
import type { V2Datatype, V2ModelMetadata } from '../../../../shared/inference/v2.ts';

/** DESIGN.md 4.1 / KServe's datatype table, written out: the typed array and value range of each. */
const DATATYPES: Record<V2Datatype, { array: unknown; values: fc.Arbitrary<number | boolean | string> }> = {
  BOOL: { array: Uint8Array, values: fc.boolean() },
  UINT8: { array: Uint8Array, values: fc.integer({ min: 0, max: 255 }) },
  INT8: { array: Int8Array, values: fc.integer({ min: -128, max: 127 }) },
  UINT16: { array: Uint16Array, values: fc.integer({ min: 0, max: 65535 }) },
  INT16: { array: Int16Array, values: fc.integer({ min: -32768, max: 32767 }) },
  UINT32: { array: Uint32Array, values: fc.integer({ min: 0, max: 4294967295 }) },
  INT32: { array: Int32Array, values: fc.integer({ min: -2147483648, max: 2147483647 }) },
  UINT64: { array: BigUint64Array, values: fc.maxSafeNat() },
  INT64: { array: BigInt64Array, values: fc.maxSafeInteger() },
  // FP32 values generated as float32 so the typed array holds them exactly.
  FP32: { array: Float32Array, values: fc.float({ noNaN: true, noDefaultInfinity: true }) },
  FP64: { array: Float64Array, values: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  // FP16 values generated from finite binary16 bit patterns, so each converts exactly.
  FP16: {
    array: Uint16Array,
    values: fc
      .integer({ min: 0, max: 0xffff })
      .filter((bits) => (bits & 0x7c00) !== 0x7c00)
      .map(float16BitsToNumber),
  },
  BYTES: { array: Array, values: fc.string({ maxLength: 8 }) },
};

const PROTOTYPE_KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];

const tensor = fc
  .record({
    datatype: fc.constantFrom(...(Object.keys(DATATYPES) as V2Datatype[])),
    shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
  })
  .chain(({ datatype, shape }) => {
    const count = shape.reduce((product, dimension) => product * dimension, 1);
    return fc.record({
      datatype: fc.constant(datatype),
      shape: fc.constant(shape),
      data: fc.array(DATATYPES[datatype].values, { minLength: count, maxLength: count }),
    });
  });

const validRequest = fc.record(
  {
    id: fc.string({ maxLength: 256 }),
    inputs: fc.uniqueArray(
      fc.tuple(
        fc.oneof(fc.string({ minLength: 1, maxLength: 256 }), fc.constantFrom(...PROTOTYPE_KEYS)),
        tensor,
      ),
      { minLength: 1, maxLength: 8, selector: ([name]) => name },
    ),
  },
  { requiredKeys: ['inputs'] },
);

/** The metadata of a model that takes exactly these inputs, dimension 0 dynamic. */
function modelFor(
  inputs: readonly { name: string; datatype: V2Datatype; shape: number[] }[],
): V2ModelMetadata {
  return {
    name: 'm',
    platform: 'onnx_onnxv1',
    inputs: inputs.map(({ name, datatype, shape }) => ({
      name,
      datatype,
      shape: shape.map((dimension, axis) => (axis === 0 ? -1 : dimension)),
    })),
    outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }],
  };
}

/** True when `action` returns or throws one of our typed errors; anything else fails the property. */
function onlyTypedErrors(action: () => unknown): boolean {
  try {
    action();
  } catch (error) {
    if (isNitroInferError(error) && error.code === 'ERR_INFERENCE_INPUT_INVALID') return true;
    throw error;
  }
  return true;
}

describe('V2 requests, generated', () => {
  it('valid requests are accepted and become the right typed arrays with the right values', () => {
    fc.assert(
      fc.property(validRequest, ({ id, inputs }) => {
        const named = inputs.map(([name, input]) => ({ name, ...input }));
        const parsed = parseInferenceRequest({ ...(id === undefined ? {} : { id }), inputs: named });
        expect(parsed.inputs).toEqual(named);
        const flat = toFlatTensors(parsed, modelFor(named));
        flat.forEach((result, index) => {
          const input = named[index] as (typeof named)[number];
          expect(result.name).toBe(input.name);
          expect(result.dims).toEqual(input.shape);
          expect(result.data.constructor).toBe(DATATYPES[input.datatype].array);
          // -0 and 0 compared as equal: toEqual tells them apart, and the integer arrays keep no -0.
          const zeroless = (value: number | boolean | string) => (value === 0 ? 0 : value);
          const read = Array.from(result.data as unknown as ArrayLike<number | bigint | string>, (value) =>
            input.datatype === 'BOOL'
              ? value === 1
              : input.datatype === 'BYTES'
                ? value
                : zeroless(input.datatype === 'FP16' ? float16BitsToNumber(Number(value)) : Number(value)),
          );
          expect(read).toEqual(input.data.map(zeroless));
        });
      }),
      { numRuns: 500, interruptAfterTimeLimit: 3_000 },
    );
  });

  it('arbitrary JSON is refused only with ERR_INFERENCE_INPUT_INVALID', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (body) =>
        onlyTypedErrors(() => parseInferenceRequest(body)),
      ),
      { numRuns: 2_000, interruptAfterTimeLimit: 3_000 },
    );
  });

  it('requests with arbitrary parts and prototype keys are refused only with typed errors, also by toFlatTensors', () => {
    const key = fc.oneof(
      fc.constantFrom('name', 'datatype', 'shape', 'data', 'parameters', ...PROTOTYPE_KEYS),
      fc.string({ maxLength: 8 }),
    );
    const part = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(...PROTOTYPE_KEYS, 'FP32', 'BOOL', 'INT64'),
      fc.array(fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.array(fc.integer(), { maxLength: 3 })), {
        maxLength: 6,
      }),
    );
    const mangled = fc.record({
      inputs: fc.array(
        fc.oneof(
          tensor.map((input) => ({ name: 'x', ...input })),
          fc.dictionary(key, part, { maxKeys: 6 }),
        ),
        { minLength: 1, maxLength: 3 },
      ),
      outputs: fc.option(fc.array(fc.dictionary(key, part, { maxKeys: 2 }), { maxLength: 2 }), {
        nil: undefined,
      }),
      mangle: fc.option(fc.tuple(key, part), { nil: undefined }),
    });
    fc.assert(
      fc.property(mangled, ({ inputs, outputs, mangle }) => {
        // Put the mangled key into the first tensor, through JSON so "__proto__" stays an own key.
        const first = JSON.parse(JSON.stringify(inputs[0])) as Record<string, unknown>;
        if (mangle !== undefined)
          Object.defineProperty(first, mangle[0], { value: mangle[1], enumerable: true });
        const body: unknown = JSON.parse(
          JSON.stringify({ inputs: [first, ...inputs.slice(1)], ...(outputs ? { outputs } : {}) }),
        );
        return onlyTypedErrors(() => {
          const parsed = parseInferenceRequest(body);
          toFlatTensors(
            parsed,
            modelFor(parsed.inputs.map((input) => ({ ...input, shape: [...input.shape] }))),
          );
        });
      }),
      { numRuns: 2_000, interruptAfterTimeLimit: 4_000 },
    );
  });
});
