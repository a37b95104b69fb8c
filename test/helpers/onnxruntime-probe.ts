/**
 * A child process for the telemetry test: creates an ONNX Runtime session and runs it once, then
 * exits. `pool` goes through the enclave's inference pool (worker threads); `direct` loads
 * onnxruntime-node in the main thread after the telemetry switch module; `unprotected` loads it
 * without the switch (the control). Prints one JSON line with the outputs' names.
 */
import { denseLayerModel } from '../../sim/onnx-builder.ts';

const mode = process.argv[2];
const model = denseLayerModel(
  'telemetry-probe-graph',
  new Float32Array(8 * 4).fill(0.25),
  new Float32Array(4),
);

if (mode === 'pool') {
  const { InferencePool } = await import('../../enclave/inference/pool.ts');
  const pool = new InferencePool({ size: 1 });
  const metadata = await pool.load('probe', model);
  const input = metadata.inputs[0]!;
  const result = await pool.infer('probe', {
    inputs: [{ name: input.name, datatype: 'FP32', shape: [1, 8], data: new Array(8).fill(1) }],
  });
  await pool.close();
  console.log(JSON.stringify({ outputs: result.outputs.map((output) => output.name) }));
} else if (mode === 'direct' || mode === 'unprotected') {
  if (mode === 'direct') await import('../../enclave/inference/onnxruntime-env.ts');
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(model);
  const outputs = await session.run({
    [session.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(8).fill(1), [1, 8]),
  });
  await session.release();
  console.log(JSON.stringify({ outputs: Object.keys(outputs) }));
} else {
  throw new Error(`unknown mode ${String(mode)}`);
}
