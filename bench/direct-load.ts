/**
 * The direct baseline in its own process, so it can be pinned exactly as the enclave is (DESIGN.md
 * 8): in-process `session.run` of the model on the request's inputs — the physical limit the full
 * path is compared against. Prints latency, throughput, peak RSS and the affinity it ran with, as JSON.
 * Usage: direct-load.ts <model.onnx> <request.json> <total> <loads: closed:N,open:R,open:<f>x…> <intra-op threads>
 */
import { readFile } from 'node:fs/promises';
// Before onnxruntime-node: its telemetry off (enclave/inference/onnxruntime-env.ts).
import '../enclave/inference/onnxruntime-env.ts';
import ort from 'onnxruntime-node';
import { affinityOf, peakRssOf } from './placement.ts';
import { driveAll } from './stats.ts';

const [modelFile, requestFile, total, specs, threads] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const request = JSON.parse(await readFile(requestFile, 'utf8')) as {
  inputs: { name: string; shape: number[]; data: number[] }[];
};
// The enclave's workers run one session each with this many intra-op threads and one inter-op
// thread (enclave/inference/pool.ts); the baseline matches them.
const session = await ort.InferenceSession.create(new Uint8Array(await readFile(modelFile)), {
  intraOpNumThreads: Number(threads),
  interOpNumThreads: 1,
});
const feeds = Object.fromEntries(
  request.inputs.map((input) => [
    input.name,
    new ort.Tensor('float32', Float32Array.from(input.data), input.shape),
  ]),
);
for (let index = 0; index < 20; index++) await session.run(feeds);
const results = await driveAll(specs, Number(total), () => session.run(feeds));
await session.release();
console.log(JSON.stringify({ results, peakRssMiB: peakRssOf('self'), affinity: affinityOf(process.pid) }));
