/**
 * Bundled by the image test exactly as the enclave entry is: proves the bundled worker location
 * works by loading a model into the worker pool and running it. Prints the output as JSON.
 */
import { InferencePool } from '../../enclave/inference/pool.ts';
import { denseLayerModel } from '../../sim/onnx-builder.ts';

const pool = new InferencePool({ size: 1 });
await pool.load(
  'probe',
  denseLayerModel('probe', Float32Array.from([1, 2, 3, 4]), Float32Array.from([0, 1])),
);
const response = await pool.infer('probe', {
  inputs: [{ name: 'X', shape: [1, 2], datatype: 'FP32', data: [1, 1] }],
});
console.log(JSON.stringify(response.outputs[0]?.data));
await pool.close();
