/**
 * BYTES elements are counted against MAX_BYTES_ELEMENTS from the shapes, before any blob is decoded:
 * an empty element is 4 bytes on the wire but a JS string (and an ONNX Runtime copy) in the enclave,
 * so a 32 MiB body of 8 Mi empty elements would cost about 1 GiB of heap (attacker review).
 */
import { describe, expect, it } from 'vitest';
import { MAX_BYTES_ELEMENTS, parseInferenceRequest } from '../../../../shared/inference/v2.ts';
import { codeOf } from '../../../helpers/codes.ts';

/** A binary request of `count` empty BYTES elements split over `inputs` tensors. */
function emptyStrings(count: number, inputs = 1) {
  const each = count / inputs;
  const header = {
    inputs: Array.from({ length: inputs }, (_, index) => ({
      name: `s${index}`,
      datatype: 'BYTES',
      shape: [each],
      parameters: { binary_data_size: each * 4 },
    })),
  };
  return { header, section: new Uint8Array(count * 4) };
}

describe('BYTES element bound', () => {
  it('accepts a request at the bound', () => {
    const { header, section } = emptyStrings(MAX_BYTES_ELEMENTS);
    const parsed = parseInferenceRequest(header, section);
    expect(parsed.inputs[0]?.shape).toEqual([MAX_BYTES_ELEMENTS]);
  });

  it('refuses one element more, in one tensor or spread over several', () => {
    for (const inputs of [1, 2]) {
      const { header, section } = emptyStrings(MAX_BYTES_ELEMENTS + inputs, inputs);
      expect(codeOf(() => parseInferenceRequest(header, section))).toBe('ERR_INFERENCE_INPUT_INVALID');
    }
  });
});
